"""The audit chain against a real Redis: concurrent writers, and `verify` catching every kind of tampering."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import orjson
import pytest
import redis

from gateway.audit.chain import AuditChain, read_checkpoints, verify
from gateway.audit.record import AuditRecord
from gateway.cli import main
from gateway.store import names
from gateway.store.audit import AuditReader
from gateway.store.redis import async_client


def _record(n: int, client_id: str = "tpp-demo") -> AuditRecord:
    return AuditRecord(ts=f"2026-11-23T10:00:{n % 60:02d}.000+00:00",
                       interaction_id=f"00000000-0000-4000-8000-{n:012d}",
                       method="GET", route="/open-banking/v3.1/aisp/accounts", status=200, decision="allow",
                       reason=None, latency_ms=1.5, client_id=client_id, cert_thumbprint="abc")


def _write(redis_url: str, count: int, checkpoint_file=None) -> str:
    async def go() -> str:
        client = async_client(redis_url)
        chain = AuditChain(client, checkpoint_file)
        await asyncio.gather(*(chain.append(_record(n)) for n in range(count)))
        await chain.close()
        await client.aclose()
        return chain.chain_id
    return asyncio.run(go())


def _verify(redis_url: str, checkpoints=()):
    client = redis.Redis.from_url(redis_url)
    try:
        return verify(AuditReader(client).records(), heads=AuditReader(client).heads(), checkpoints=checkpoints)
    finally:
        client.close()


def _rewrite_stream(redis_url: str, transform) -> None:
    """What an attacker with Redis write access can do: replace the stream with an edited copy."""
    client = redis.Redis.from_url(redis_url)
    records = [r for _, r in AuditReader(client).records()]
    client.delete(names.AUDIT_STREAM)
    for record in transform(records):
        client.xadd(names.AUDIT_STREAM, {"r": orjson.dumps(record)})
    client.close()


def test_an_untouched_log_verifies(redis_url):
    _write(redis_url, 25)
    result = _verify(redis_url)
    assert (result.records, result.chains, result.breach) == (25, 1, None)


def test_records_from_concurrent_worker_processes_form_intact_chains(redis_url):
    script = textwrap.dedent(f"""
        import asyncio
        from gateway.audit.chain import AuditChain
        from gateway.audit.record import AuditRecord
        from gateway.store.redis import async_client
        async def go():
            client = async_client({redis_url!r})
            chain = AuditChain(client, None)
            rec = AuditRecord(ts="t", interaction_id="i", method="GET", route=None, status=404,
                              decision="refuse", reason="route.not_found", latency_ms=0.1)
            for _ in range(10):
                await asyncio.gather(*(chain.append(rec) for _ in range(30)))
            await client.aclose()
        asyncio.run(go())
    """)
    workers = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0, 0]
    result = _verify(redis_url)
    assert (result.records, result.chains, result.breach) == (1200, 4, None)


def test_a_second_writer_cannot_fork_a_chain(redis_url):
    chain_id = _write(redis_url, 3)

    async def impostor():
        client = async_client(redis_url)
        chain = AuditChain(client, None, chain_id=chain_id)  # believes the chain is empty
        try:
            await chain.append(_record(99))
        finally:
            await client.aclose()

    with pytest.raises(Exception, match="head moved"):
        asyncio.run(impostor())
    assert _verify(redis_url).breach is None


def test_a_changed_record_is_named(redis_url):
    _write(redis_url, 10)

    def edit(records):
        records[4]["status"] = 403
        return records
    _rewrite_stream(redis_url, edit)
    breach = _verify(redis_url).breach
    assert "seq 5" in breach.where and "does not match its hash" in breach.message


def test_a_changed_record_with_a_recomputed_hash_breaks_the_next_link(redis_url):
    from gateway.audit.chain import digest
    _write(redis_url, 10)

    def edit(records):
        records[4]["client_id"] = "tpp-other"
        records[4]["hash"] = digest(records[4])
        return records
    _rewrite_stream(redis_url, edit)
    breach = _verify(redis_url).breach
    assert "seq 6" in breach.where and "does not link" in breach.message


def test_a_removed_record_is_named(redis_url):
    _write(redis_url, 10)
    client = redis.Redis.from_url(redis_url)
    fifth = client.xrange(names.AUDIT_STREAM, count=5)[4][0]
    client.xdel(names.AUDIT_STREAM, fifth)
    client.close()
    breach = _verify(redis_url).breach
    assert "seq 6" in breach.where and "out of sequence: seq 6 follows seq 4" in breach.message


def test_reordered_records_are_named(redis_url):
    _write(redis_url, 10)

    def swap(records):
        records[3], records[4] = records[4], records[3]
        return records
    _rewrite_stream(redis_url, swap)
    breach = _verify(redis_url).breach
    assert "seq 5" in breach.where and "out of sequence" in breach.message


def test_a_truncated_chain_is_caught_by_its_head(redis_url):
    _write(redis_url, 10)
    _rewrite_stream(redis_url, lambda records: records[:-2])
    breach = _verify(redis_url).breach
    assert "truncated" in breach.message and "seq 10" in breach.message and "seq 8" in breach.message


def test_a_truncation_that_also_rewrites_the_head_is_caught_by_the_checkpoint(redis_url, tmp_path):
    checkpoints = tmp_path / "checkpoints.jsonl"
    chain_id = _write(redis_url, 10, checkpoints)
    _rewrite_stream(redis_url, lambda records: records[:-3])
    client = redis.Redis.from_url(redis_url)
    last = [r for _, r in AuditReader(client).records()][-1]
    client.hset(names.AUDIT_HEADS, chain_id, f"{last['seq']}:{last['hash']}")
    client.close()
    assert _verify(redis_url).breach is None  # Redis alone cannot tell
    breach = _verify(redis_url, read_checkpoints(checkpoints)).breach
    assert "truncated" in breach.message and "checkpoint" in breach.message


def test_cli_verify_exit_codes_and_export_roundtrip(redis_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OBGW_VAR_DIR", str(tmp_path))
    _write(redis_url, 12)
    assert main(["audit", "verify"]) == 0
    assert "audit log intact: 12 records in 1 chains" in capsys.readouterr().out

    exported = tmp_path / "export.jsonl"
    assert main(["audit", "export", "-o", str(exported)]) == 0
    assert len(exported.read_bytes().splitlines()) == 12
    assert main(["audit", "verify", "--file", str(exported)]) == 0
    lines = exported.read_bytes().splitlines()
    edited = orjson.loads(lines[6])
    edited["status"] = 500
    lines[6] = orjson.dumps(edited)
    exported.write_bytes(b"\n".join(lines) + b"\n")
    capsys.readouterr()
    assert main(["audit", "verify", "--file", str(exported)]) == 1
    assert "line 7" in capsys.readouterr().err

    _rewrite_stream(redis_url, lambda records: records[:5] + records[6:])
    assert main(["audit", "verify"]) == 1
    assert "seq 7 follows seq 5" in capsys.readouterr().err


def test_cli_search_filters_and_prints_the_contract_fields(redis_url, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_url)
    async def go():
        client = async_client(redis_url)
        chain = AuditChain(client, None)
        for n in range(6):
            await chain.append(_record(n, client_id="tpp-demo" if n % 2 else "tpp-other"))
        await client.aclose()
    asyncio.run(go())
    assert main(["audit", "search", "--json", "--client", "tpp-demo"]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and {r["client_id"] for r in rows} == {"tpp-demo"}
    for field in ("ts", "interaction_id", "client_id", "consent_id", "method", "route", "status", "decision",
                  "latency_ms"):
        assert field in rows[0]
    assert main(["audit", "search", "--json", "--since", "2999-01-01T00:00:00Z"]) == 0
    assert capsys.readouterr().out == ""
