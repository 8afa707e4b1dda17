"""Audit shards on a real Redis Cluster (issue 19 item 1: "the audit chains spread over the slots"): three shards sit
on the three masters; under load, with the master of one shard killed mid-load, every acknowledged record is stored
(spooled while no replica could confirm it, then replayed), and every chain of every shard verifies, archive and live
as one log, with every shard's signed manifest checked."""
from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from topology import wait_until

from gateway.audit import query
from gateway.audit.archive import ArchivedLog, Archiver
from gateway.audit.chain import AuditChain, read_checkpoints, shard_of, verify
from gateway.audit.record import AuditRecord
from gateway.store import names
from gateway.store.audit import AuditReader
from gateway.store.redis import async_client, sync_client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SHARDS = 3
TAGS = [names.audit_shard_tag(index, SHARDS) for index in range(SHARDS)]
ROUNDS, PER_ROUND = 40, 5  # each chain: ROUNDS group commits of PER_ROUND concurrent records
SIGNING_KEY = Ed25519PrivateKey.generate()


def _chain_in(tag: str) -> str:
    return next(chain for chain in (f"cluster-node-{n}" for n in itertools.count()) if shard_of(chain, SHARDS) == tag)


def _record(chain: int, n: int) -> AuditRecord:
    return AuditRecord(ts=time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime()),
                       interaction_id=f"00000000-0000-4000-{chain:04d}-{n:012d}", method="GET",
                       route="/open-banking/v3.1/aisp/accounts", status=200, decision="allow", reason=None,
                       latency_ms=1.0, client_id="tpp-demo", consent_id="aac-cluster", cert_thumbprint="abc")


async def _load(url: str, checkpoints, victim, redis_cluster) -> tuple[set[str], list[bool]]:
    """Every chain appends ROUNDS batches; a third of the way in, the master of shard 1 is killed. Returns the
    interaction ids of every acknowledged record (stored, or spooled to be replayed), and which chains spooled."""
    client = async_client(url)
    chains = [AuditChain(client, checkpoints, chain_id=_chain_in(tag), signer=SIGNING_KEY, shards=SHARDS)
              for tag in TAGS]
    acknowledged: set[str] = set()

    async def one(chain: AuditChain, index: int, n: int) -> None:
        record = _record(index, n)
        await chain.append(record)
        acknowledged.add(record.interaction_id)

    try:
        for round_ in range(ROUNDS):
            if round_ == ROUNDS // 3:
                await asyncio.to_thread(victim.kill)
            await asyncio.gather(*(one(chain, index, round_ * PER_ROUND + k) for index, chain in enumerate(chains)
                                   for k in range(PER_ROUND)), return_exceptions=True)
            await asyncio.sleep(0.05)
        await asyncio.to_thread(wait_until, redis_cluster.served, 20, "a replica promoted in the killed master's place")
        # The operator brings the node back: it rejoins as the new master's replica, so appends (which WAIT for a
        # replica) are stored again, and the spooled ones replayed.
        await asyncio.to_thread(victim.start)
        await asyncio.to_thread(wait_until, redis_cluster.healthy, 30, "the cluster whole again")
        deadline = time.monotonic() + 30
        while any(chain.spool_path and chain.spool_path.exists() and chain.spool_path.stat().st_size
                  for chain in chains) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        for chain in chains:
            await chain.checkpoint()
        spooled = [chain.spool_path is not None for chain in chains]
    finally:
        for chain in chains:
            await chain.close()
        await client.aclose()
    return acknowledged, spooled


def test_shards_on_three_masters_keep_every_acknowledged_record_through_a_failover_and_verify(redis_cluster,
                                                                                              tmp_path):
    masters = [redis_cluster.master_of(names.audit_stream(tag)) for tag in TAGS]
    assert len({master.port for master in masters}) == SHARDS
    for tag in TAGS:  # the shard's other keys follow its stream
        assert redis_cluster.master_of(names.consent_accesses("c", tag)) is redis_cluster.master_of(
            names.audit_stream(tag)) is redis_cluster.master_of(names.audit_archive(tag))
    victim = masters[1]
    checkpoints = tmp_path / "audit" / "checkpoints.jsonl"
    try:
        acknowledged, spooled = asyncio.run(_load(redis_cluster.url, checkpoints, victim, redis_cluster))
    finally:
        if victim.process is None:
            victim.start()
    # The killed master's shard waited for the failover in the spool (the others too while the cluster said
    # CLUSTERDOWN: its nodes require full slot coverage).
    assert spooled[1]
    assert len(acknowledged) == ROUNDS * PER_ROUND * SHARDS  # every append was acknowledged, by Redis or the spool

    client = sync_client(redis_cluster.url)
    try:
        report = Archiver(client, tmp_path / "archive", SIGNING_KEY, live_seconds=0, segment_records=150).run()
        assert report is not None and report.records and report.trimmed == report.records
        log = ArchivedLog(AuditReader(client), tmp_path / "archive")
        stored = [record["interaction_id"] for record in query.search(log)]
        assert acknowledged <= set(stored)
        assert len(stored) == len(set(stored))  # nothing stored twice by the replays
        by_shard = {tag: sum(1 for _ in log.parts[i].records()) for i, tag in enumerate(TAGS)}
        assert all(by_shard.values()), by_shard
        archive = log.check(SIGNING_KEY.public_key())
        assert archive.breach is None, archive.breach
        assert archive.segments >= SHARDS
        result = verify(log.records(), heads=log.heads(), checkpoints=read_checkpoints(checkpoints),
                        base=archive.base)
        assert (result.breach, result.chains, result.records) == (None, SHARDS, len(stored))
        assert len(AuditReader(client).recent_accesses("aac-cluster", count=20)) == 20
    finally:
        client.close()
