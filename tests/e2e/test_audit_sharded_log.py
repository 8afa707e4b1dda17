"""The audit log spread over shards (issue 19 item 1) against a real Redis: chains write to their own shard's stream,
and readers see one log: search and latest in arrival order across shards, a consent's recent accesses from every
shard, `verify` over every chain of every shard (and the signed checkpoints' cover of them), the archive per shard
with every shard's signed manifest checked, and a log first written as one stream read on with new shards."""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import query
from gateway.audit.archive import ArchivedLog, Archiver, shard_directory
from gateway.audit.chain import AuditChain, VerifyResult, read_checkpoints, shard_of, verify
from gateway.audit.record import AuditRecord
from gateway.store import names
from gateway.store.audit import AuditReader
from gateway.store.redis import async_client

pytestmark = pytest.mark.e2e

SIGNING_KEY = Ed25519PrivateKey.generate()
SHARDS = 3
TAGS = [names.audit_shard_tag(index, SHARDS) for index in range(SHARDS)]
CONSENT = "aac-sharded"


def _chain_in(tag: str, count: int = SHARDS, prefix: str = "node") -> str:
    """A chain id that `shard_of` maps to shard `tag`."""
    return next(chain for chain in (f"{prefix}-{n}" for n in itertools.count()) if shard_of(chain, count) == tag)


def _record(n: int) -> AuditRecord:
    return AuditRecord(ts=f"2026-12-07T09:{n // 60 % 60:02d}:{n % 60:02d}.000+00:00",
                       interaction_id=f"00000000-0000-4000-8000-{n:012d}", method="GET",
                       route="/open-banking/v3.1/aisp/accounts", status=200, decision="allow", reason=None,
                       latency_ms=1.0, client_id="tpp-demo" if n % 2 else "tpp-other", consent_id=CONSENT,
                       cert_thumbprint="abc")


def _append(redis_url: str, checkpoints: Path, chain_ids: list[str], numbers, shards: int = SHARDS) -> None:
    """Records `numbers`, one after another round-robin over the chains (so arrival order interleaves the shards),
    each in its own millisecond (stream ids order arrivals to the millisecond; within one, shards keep their order),
    each chain checkpointed (signed) at the end as a worker does."""
    async def go() -> None:
        client = async_client(redis_url)
        chains = [AuditChain(client, checkpoints, chain_id=chain, signer=SIGNING_KEY, shards=shards)
                  for chain in chain_ids]
        try:
            for i, n in enumerate(numbers):
                await chains[i % len(chains)].append(_record(n))
                await asyncio.sleep(0.002)
            for chain in chains:
                await chain.checkpoint()
        finally:
            for chain in chains:
                await chain.close()
            await client.aclose()
    asyncio.run(go())


@pytest.fixture(name="client")
def sync_redis(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _verify(client: redis.Redis, root: Path) -> VerifyResult:
    """What `obgw audit verify` does, with every shard's archive manifest checked (`ArchivedLog.check`)."""
    log = ArchivedLog(AuditReader(client), root / "archive")
    archive = log.check(SIGNING_KEY.public_key())
    assert archive.breach is None, archive.breach
    heads = log.heads()
    return verify(log.records(), heads=heads, checkpoints=read_checkpoints(root / "checkpoints.jsonl"),
                  base=archive.base)


def test_chains_write_to_their_shards_and_readers_see_one_log_in_arrival_order(client, redis_url, tmp_path):
    chains = [_chain_in(tag) for tag in TAGS]
    _append(redis_url, tmp_path / "checkpoints.jsonl", chains, range(30))

    assert [client.xlen(names.audit_stream(tag)) for tag in TAGS] == [10, 10, 10]
    assert {tag: list(map(bytes.decode, client.hkeys(names.audit_heads(tag)))) for tag in TAGS} == {
        tag: [chain] for tag, chain in zip(TAGS, chains, strict=True)}
    reader = AuditReader(client)
    assert reader.shards() == TAGS
    found = list(query.search(reader))
    assert [record["interaction_id"] for record in found] == [_record(n).interaction_id for n in range(30)]
    newest = query.latest(reader, 4, client_id="tpp-demo")
    assert [record["interaction_id"] for record in newest] == [_record(n).interaction_id for n in (29, 27, 25, 23)]
    assert [record["interaction_id"] for record in reader.tail(2)] == [_record(n).interaction_id for n in (28, 29)]
    followed = reader.follow(after="0-0", block_ms=100)  # `obgw audit tail --follow`, polling every shard
    assert [next(followed)["interaction_id"] for _ in range(30)] == [_record(n).interaction_id for n in range(30)]
    followed.close()
    accesses = reader.recent_accesses(CONSENT, count=5)
    assert [access["ts"] for access in accesses] == [_record(n).ts for n in (29, 28, 27, 26, 25)]

    result = _verify(client, tmp_path)
    assert (result.records, result.chains, result.breach) == (30, 3, None)


def test_verify_names_a_record_removed_from_one_shard(client, redis_url, tmp_path):
    chains = [_chain_in(tag) for tag in TAGS]
    _append(redis_url, tmp_path / "checkpoints.jsonl", chains, range(30))
    third = client.xrange(names.audit_stream(TAGS[1]), count=3)[2][0]
    client.xdel(names.audit_stream(TAGS[1]), third)
    result = _verify(client, tmp_path)
    assert result.breach is not None and f"chain {chains[1]}" in str(result.breach)
    assert "out of sequence: seq 4 follows seq 2" in str(result.breach)


def test_a_shard_wiped_whole_with_its_own_checkpoints_is_caught_by_another_shards_checkpoint(client, redis_url,
                                                                                           tmp_path):
    chains = [_chain_in(tag) for tag in TAGS]
    _append(redis_url, tmp_path / "checkpoints.jsonl", chains, range(12))
    later = _chain_in(TAGS[0], prefix="later")  # its first checkpoint commits to every chain's head
    _append(redis_url, tmp_path / "checkpoints.jsonl", [later], range(12, 14))
    client.delete(names.audit_stream(TAGS[2]), names.audit_heads(TAGS[2]))
    path = tmp_path / "checkpoints.jsonl"
    kept = [line for line in path.read_bytes().splitlines() if f'"chain":"{chains[2]}"'.encode() not in line]
    path.write_bytes(b"".join(line + b"\n" for line in kept))
    result = _verify(client, tmp_path)
    assert result.breach is not None
    assert f"chain {chains[2]}: missing" in str(result.breach)


def test_every_shard_is_archived_to_its_own_signed_manifest_and_the_whole_log_still_verifies(client, redis_url,
                                                                                           tmp_path):
    chains = [_chain_in(tag) for tag in TAGS]
    _append(redis_url, tmp_path / "checkpoints.jsonl", chains, range(30))
    report = Archiver(client, tmp_path / "archive", SIGNING_KEY, live_seconds=0).run()
    assert report is not None and (report.records, report.trimmed, report.segments) == (30, 30, 3)
    assert [client.xlen(names.audit_stream(tag)) for tag in TAGS] == [0, 0, 0]
    for tag in TAGS:
        assert (shard_directory(tmp_path / "archive", tag) / "manifest.jsonl").is_file()
    assert shard_directory(tmp_path / "archive", TAGS[0]) == tmp_path / "archive"  # shard 0 where it always was

    later = [_chain_in(tag, prefix="later") for tag in TAGS]  # the next workers' chains, live after the archive
    _append(redis_url, tmp_path / "checkpoints.jsonl", later, range(30, 36))
    log = ArchivedLog(AuditReader(client), tmp_path / "archive")
    assert [r["interaction_id"] for r in query.search(log)] == [_record(n).interaction_id for n in range(36)]
    assert [r["interaction_id"] for r in query.latest(log, 8)] == [_record(n).interaction_id
                                                                   for n in range(35, 27, -1)]
    result = _verify(client, tmp_path)
    assert (result.records, result.chains, result.breach) == (36, 6, None)

    segment = shard_directory(tmp_path / "archive", TAGS[2]) / "segment-000001.jsonl"
    segment.write_bytes(segment.read_bytes().replace(b"tpp-demo", b"tpp-evil", 1))
    check = ArchivedLog(AuditReader(client), tmp_path / "archive").check(SIGNING_KEY.public_key())
    assert check.breach is not None and "archive segment segment-000001.jsonl" in str(check.breach)
    assert "SHA-256 does not match" in str(check.breach)


def test_a_log_written_as_one_stream_reads_on_and_verifies_with_shards_added(client, redis_url, tmp_path):
    old = _chain_in(TAGS[0], 1, prefix="before-shards")
    _append(redis_url, tmp_path / "checkpoints.jsonl", [old], range(6), shards=1)
    assert client.xlen(names.AUDIT_STREAM) == 6 and not client.exists(names.AUDIT_SHARDS)

    chains = [_chain_in(tag) for tag in TAGS[1:]]
    _append(redis_url, tmp_path / "checkpoints.jsonl", chains, range(6, 12))
    assert [record["interaction_id"] for record in query.search(AuditReader(client))] == [
        _record(n).interaction_id for n in range(12)]
    result = _verify(client, tmp_path)
    assert (result.records, result.chains, result.breach) == (12, 3, None), str(result.breach)


def test_a_shard_listing_lost_in_a_failover_comes_back_with_the_chains_next_checkpoint(client, redis_url, tmp_path):
    async def go() -> None:
        writer = async_client(redis_url)
        chain = AuditChain(writer, tmp_path / "checkpoints.jsonl", chain_id=_chain_in(TAGS[2]), signer=SIGNING_KEY,
                           shards=SHARDS)
        try:
            await chain.append(_record(1))
            client.delete(names.AUDIT_SHARDS)  # what a failover of shard 0's master may lose (it is not WAITed for)
            assert AuditReader(client).shards() == [names.AUDIT_TAG]
            await chain.checkpoint()
        finally:
            await chain.close()
            await writer.aclose()
    asyncio.run(go())
    assert AuditReader(client).shards() == [names.AUDIT_TAG, TAGS[2]]
    assert _verify(client, tmp_path).records == 1


@pytest.mark.timeout(30)
def test_following_from_now_keeps_shard_0_when_a_second_shard_is_listed_later(client, redis_url, tmp_path):
    """`obgw audit tail --follow` started on a one-shard log: a shard listed afterwards turns the blocking read into
    polling, and shard 0's new records still come (a "$" left as is would read nothing from it again)."""
    checkpoints = tmp_path / "checkpoints.jsonl"
    _append(redis_url, checkpoints, [_chain_in(TAGS[0], 1)], range(3), shards=1)

    def later() -> None:
        time.sleep(0.3)
        _append(redis_url, checkpoints, [_chain_in(TAGS[1])], range(3, 5))  # lists shard 1
        time.sleep(0.3)
        _append(redis_url, checkpoints, [_chain_in(TAGS[0], prefix="late")], range(5, 7))

    writer = threading.Thread(target=later)
    followed = AuditReader(client).follow(block_ms=100)
    writer.start()
    try:
        seen = [next(followed)["interaction_id"] for _ in range(4)]
    finally:
        writer.join()
        followed.close()
    assert seen == [_record(n).interaction_id for n in range(3, 7)]
