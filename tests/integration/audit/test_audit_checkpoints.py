"""Signed checkpoints that commit to every chain (issue 14 item 6), against a real Redis and `obgw audit verify
--checkpoints FILE --public-key FILE`: an insider who can write Redis and the local checkpoint file, but does not hold
the signing key, can neither delete a whole chain nor invent one without verify naming it."""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.chain import GENESIS, AuditChain, read_checkpoints, seal
from gateway.audit.key_files import sign_checkpoint
from gateway.audit.record import AuditRecord
from gateway.cli import main
from gateway.store import names
from gateway.store.audit import AuditReader
from gateway.store.redis import async_client

OPERATOR = "operator-host-1-abcd"  # a re-identifying search's chain: what an insider would most like to hide
SIGNING_KEY = Ed25519PrivateKey.generate()


def _record(n: int) -> AuditRecord:
    return AuditRecord(ts=f"2026-12-01T10:00:{n % 60:02d}.000+00:00",
                       interaction_id=f"00000000-0000-4000-8000-{n:012d}", method="GET",
                       route="/open-banking/v3.1/aisp/accounts", status=200, decision="allow",
                       reason=None, latency_ms=1.5, client_id="tpp-demo", cert_thumbprint="abc")


async def _append(chain: AuditChain, numbers) -> None:
    for n in numbers:
        await chain.append(_record(n))
        await asyncio.sleep(0.003)  # a stream id of its own millisecond, so records can be slipped in between


@pytest.fixture
def log(redis_url, tmp_path, monkeypatch):
    """A worker's chain of 8 records and an operator's chain of 1, checkpointed as the gateway does: the worker at 5,
    the operator at its exit, the worker again at 8. Returns the chain ids (worker, operator)."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OBGW_VAR_DIR", str(tmp_path / "var"))
    checkpoints = tmp_path / "var" / "audit" / "checkpoints.jsonl"

    async def go() -> str:
        client = async_client(redis_url)
        worker = AuditChain(client, checkpoints, signer=SIGNING_KEY)
        try:
            await _append(worker, range(5))
            await worker.checkpoint()
            operator = AuditChain(client, checkpoints, chain_id=OPERATOR, signer=SIGNING_KEY, spool=False)
            await _append(operator, [100])
            await operator.close()
            await _append(worker, range(5, 8))
            await worker.checkpoint()
        finally:
            await worker.close()
            await client.aclose()
        return worker.chain_id

    return asyncio.run(go()), OPERATOR


@pytest.fixture
def public_key(tmp_path):
    path = tmp_path / "audit-signing.pub"
    path.write_bytes(SIGNING_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def _local(tmp_path):
    return tmp_path / "var" / "audit" / "checkpoints.jsonl"


def _verify_exported(tmp_path, public_key, capsys) -> tuple[int, str, str]:
    """Export the signed checkpoints (`obgw audit checkpoints`), then verify the live log against that file."""
    exported = tmp_path / "external" / "checkpoints.jsonl"
    exported.parent.mkdir(exist_ok=True)
    assert main(["audit", "checkpoints", "-o", str(exported)]) == 0
    capsys.readouterr()
    code = main(["audit", "verify", "--checkpoints", str(exported), "--public-key", str(public_key)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_each_checkpoint_commits_to_the_heads_of_every_chain_it_saw_move(log, redis_url, tmp_path):
    worker, operator = log
    client = redis.Redis.from_url(redis_url)
    heads = AuditReader(client).heads()
    client.close()
    lines = read_checkpoints(_local(tmp_path))
    assert [(line["chain"], line["seq"]) for line in lines] == [(worker, 5), (operator, 1), (worker, 8)]
    first, operators, latest = lines
    assert list(first["heads"]) == [worker]                         # the first: every chain Redis held
    assert operators["heads"] == {operator: heads[operator], worker: first["heads"][worker]}
    assert latest["heads"] == {operator: heads[operator], worker: heads[worker]}  # those that moved since
    assert all(line["sig"] and "-" in line["at"] for line in lines)


def test_the_untouched_log_verifies_against_its_exported_checkpoints(log, tmp_path, public_key, capsys):
    code, out, err = _verify_exported(tmp_path, public_key, capsys)
    assert code == 0, err
    assert "audit log intact: 9 records in 2 chains" in out
    assert "checkpoints: 3 signed by " in out and ", 0 unsigned; 0 of the signed name their own chain only" in out


def test_a_chain_deleted_whole_with_its_own_checkpoint_lines_fails_verify_naming_it(log, redis_url, tmp_path,
                                                                                     public_key, capsys):
    worker, operator = log
    client = redis.Redis.from_url(redis_url)
    ids = [stream_id for stream_id, record in AuditReader(client).records() if record["chain"] == operator]
    client.xdel(names.AUDIT_STREAM, *ids)
    client.hdel(names.AUDIT_HEADS, operator)
    client.close()
    local = _local(tmp_path)
    local.write_bytes(b"".join(line + b"\n" for line in local.read_bytes().splitlines()
                               if orjson.loads(line)["chain"] != operator))

    code, _, err = _verify_exported(tmp_path, public_key, capsys)
    assert code == 1
    assert f"chain {operator}: missing: the checkpoint of " in err and "no record of the chain" in err


def _slip_in(redis_url: str, after_seq: int, worker: str, records: list[dict]) -> None:
    """What an insider with Redis write access can do: rebuild the stream with `records` placed right after the
    worker's record `after_seq`, every other record keeping its stream id (so the checkpoints' `at` still fit)."""
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(names.AUDIT_STREAM)
    [anchor] = [sid for sid, fields in entries if orjson.loads(fields[b"r"])["chain"] == worker
                and orjson.loads(fields[b"r"])["seq"] == after_seq]
    ms = int(anchor.decode().split("-")[0])
    forged = [(f"{ms}-{1000 + i}".encode(), {b"r": orjson.dumps(record)}) for i, record in enumerate(records)]
    client.delete(names.AUDIT_STREAM)
    for stream_id, fields in sorted(entries + forged, key=lambda e: tuple(map(int, e[0].split(b"-")))):
        client.xadd(names.AUDIT_STREAM, fields, id=stream_id)
    last = records[-1]
    client.hset(names.AUDIT_HEADS, str(last["chain"]), f"{last['seq']}:{last['hash']}")
    client.close()


def _forged_chain(chain: str, numbers, start: int = 1, prev: str = GENESIS) -> list[dict]:
    sealed = []
    for seq, n in enumerate(numbers, start=start):
        sealed.append(seal(_record(n), chain, seq, prev))
        prev = str(sealed[-1]["hash"])
    return sealed


def test_an_invented_chain_with_valid_hashes_slipped_in_before_a_checkpoint_fails_verify_naming_it(
        log, redis_url, tmp_path, public_key, capsys):
    worker, _ = log
    _slip_in(redis_url, 6, worker, _forged_chain("host-9-forged", [200, 201]))
    client = redis.Redis.from_url(redis_url)
    assert len([r for _, r in AuditReader(client).records() if r["chain"] == "host-9-forged"]) == 2
    client.close()

    code, _, err = _verify_exported(tmp_path, public_key, capsys)
    assert code == 1
    assert "(chain host-9-forged, seq 1," in err and "is in no signed checkpoint" in err


def test_a_record_added_to_a_finished_chain_before_a_checkpoint_fails_verify(log, redis_url, tmp_path,
                                                                             public_key, capsys):
    worker, operator = log
    client = redis.Redis.from_url(redis_url)
    [head] = [r for _, r in AuditReader(client).records() if r["chain"] == operator]
    client.close()
    _slip_in(redis_url, 6, worker, _forged_chain(operator, [300], start=2, prev=str(head["hash"])))

    code, _, err = _verify_exported(tmp_path, public_key, capsys)
    assert code == 1
    assert f"(chain {operator}, seq 2," in err and "is in no signed checkpoint" in err


def test_a_chain_born_after_the_last_checkpoint_is_accepted(log, redis_url, tmp_path, public_key, capsys):
    async def go() -> None:
        client = async_client(redis_url)
        newcomer = AuditChain(client, None)  # no checkpoint of its own yet: as a worker between two checkpoints
        await _append(newcomer, range(400, 403))
        await client.aclose()
    asyncio.run(go())

    code, out, err = _verify_exported(tmp_path, public_key, capsys)
    assert code == 0, err
    assert "audit log intact: 12 records in 3 chains" in out


def test_checkpoints_in_the_legacy_format_still_verify_and_are_counted_as_such(redis_url, tmp_path, public_key,
                                                                                monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OBGW_VAR_DIR", str(tmp_path / "var"))

    async def go() -> str:
        client = async_client(redis_url)
        chain = AuditChain(client, None)
        await _append(chain, range(4))
        await client.aclose()
        return chain.chain_id
    chain_id = asyncio.run(go())
    client = redis.Redis.from_url(redis_url)
    seq, digest_hex = AuditReader(client).heads()[chain_id].split(":")
    client.close()
    legacy = tmp_path / "legacy.jsonl"  # as a version before item 6 wrote them: chain, seq, hash, ts, key, sig
    legacy.write_bytes(orjson.dumps(sign_checkpoint(SIGNING_KEY, {"chain": chain_id, "seq": int(seq),
                                                                  "hash": digest_hex, "ts": time.strftime(
                                                                      "%Y-%m-%dT%H:%M:%SZ")})) + b"\n")

    assert main(["audit", "verify", "--checkpoints", str(legacy), "--public-key", str(public_key)]) == 0
    out = capsys.readouterr().out
    assert "audit log intact: 4 records in 1 chains" in out
    assert "checkpoints: 1 signed by " in out and "1 of the signed name their own chain only (legacy format" in out
