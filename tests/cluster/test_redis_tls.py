"""Redis over TLS with passwords (issue 19 item 2): a Sentinel setup whose master, replica and Sentinels speak TLS
only, the Sentinels with their own password; the gateway and its CLI run on it from REDIS_URL=rediss+sentinel://
with REDIS_TLS_CA and REDIS_SENTINEL_PASSWORD, and a client without TLS or with the wrong Sentinel password gets
nothing. A Redis Cluster on TLS only (its bus too) takes sharded audit chains through rediss+cluster://."""
from __future__ import annotations

import asyncio
import secrets

import pytest
import redis
from support.gateway import bank_gateway
from support.tpp import Tpp
from topology import Cluster, SentinelSetup

from gateway.audit.chain import AuditChain, verify
from gateway.audit.record import AuditRecord
from gateway.store import names
from gateway.store.audit import AuditReader
from gateway.store.redis import async_client, sync_client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory, pki):
    cluster = Cluster(tmp_path_factory.mktemp("tls-cluster"), tls=pki)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def tls_sentinel(tmp_path_factory, pki):
    setup = SentinelSetup(tmp_path_factory.mktemp("tls-sentinel"), tls=pki, sentinel_password=secrets.token_hex(8))
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


def test_the_gateway_and_its_cli_run_on_a_tls_sentinel_setup_with_passwords(tmp_path, pki, bank, tls_sentinel):
    url = tls_sentinel.url.partition("?")[0]  # the CA and the Sentinels' password from their own settings
    assert url.startswith("rediss+sentinel://")
    gw = bank_gateway(tmp_path, pki, bank, REDIS_URL=url, REDIS_TLS_CA=str(pki / "ca.pem"),
                      REDIS_SENTINEL_PASSWORD=str(tls_sentinel.sentinel_password))
    try:
        tpp = Tpp(gw.base, pki, "tpp-demo")
        try:
            token = tpp.consent_token()
            answer = tpp.get(ACCOUNTS, token)
            assert answer.status_code == 200, answer.text
        finally:
            tpp.close()
        done = gw.cli("audit", "verify")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "audit log intact" in done.stdout
    finally:
        assert gw.stop() == 0
    client = sync_client(tls_sentinel.url)
    try:
        assert client.xlen("obgw:{audit}:records") > 0  # the records are in the TLS master
    finally:
        client.close()


def test_without_tls_or_with_the_wrong_sentinel_password_nothing_answers(tls_sentinel):
    plain = redis.Redis(port=tls_sentinel.master.port, password=tls_sentinel.password, socket_timeout=2,
                        socket_connect_timeout=2)
    try:
        with pytest.raises(redis.ConnectionError):
            plain.ping()
    finally:
        plain.close()
    wrong = sync_client(tls_sentinel.url.replace(f"sentinel_password={tls_sentinel.sentinel_password}",
                                                 "sentinel_password=wrong"))
    try:
        with pytest.raises(redis.RedisError):
            wrong.ping()
    finally:
        wrong.close()


def test_sharded_audit_chains_on_a_tls_cluster_verify(tls_cluster):
    assert tls_cluster.url.startswith("rediss+cluster://")

    async def write() -> None:
        client = async_client(tls_cluster.url)
        chains = [AuditChain(client, None, chain_id=f"tls-{n}", shards=3) for n in range(6)]
        try:
            await asyncio.gather(*(chain.append(AuditRecord(
                ts="2026-12-07T09:00:00.000+00:00", interaction_id=f"00000000-0000-4000-8000-{n:012d}",
                method="GET", route="/open-banking/v3.1/aisp/accounts", status=200, decision="allow", reason=None,
                latency_ms=1.0)) for n, chain in enumerate(chains * 5)))
        finally:
            for chain in chains:
                await chain.close()
            await client.aclose()

    asyncio.run(write())
    client = sync_client(tls_cluster.url)
    try:
        reader = AuditReader(client)
        assert len(reader.shards()) > 1  # the chains spread over shards on the TLS cluster's masters
        assert len({tls_cluster.master_of(names.audit_stream(tag)).port for tag in reader.shards()}) > 1
        result = verify(reader.records(), heads=reader.heads())
        assert (result.records, result.chains, result.breach) == (30, 6, None)
    finally:
        client.close()
