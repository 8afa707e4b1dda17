"""Audit retention (issue 19 item 4) against a real Redis: records are archived to signed segment files before the
stream is trimmed; `obgw audit verify` checks archive and live as one chain (and the manifest's signatures), naming
the first bad segment or manifest line; `search`, `tail` and `export` read both; retention deletes expired segments
only with a signed manifest line."""
from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import orjson
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.archive import MANIFEST, ArchivedLog, ArchiveError, Archiver, read_manifest, segment_name
from gateway.audit.chain import AuditChain
from gateway.audit.key_files import sign_entry
from gateway.audit.record import AuditRecord
from gateway.cli import main
from gateway.store import names
from gateway.store.audit import AuditReader
from gateway.store.redis import async_client

SIGNING_KEY = Ed25519PrivateKey.generate()


def _record(n: int, client_id: str = "tpp-demo") -> AuditRecord:
    return AuditRecord(ts=f"2026-12-01T10:{n // 60 % 60:02d}:{n % 60:02d}.000+00:00",
                       interaction_id=f"00000000-0000-4000-8000-{n:012d}", method="GET",
                       route="/open-banking/v3.1/aisp/accounts", status=200, decision="allow",
                       reason=None, latency_ms=1.5, client_id=client_id, cert_thumbprint="abc")


def append(redis_url: str, checkpoints: Path, numbers, chains: int = 2) -> list[str]:
    """`numbers` records spread over `chains` worker chains, checkpointed (signed) as workers do."""
    async def go() -> list[str]:
        client = async_client(redis_url)
        workers = [AuditChain(client, checkpoints, signer=SIGNING_KEY) for _ in range(chains)]
        try:
            for i, n in enumerate(numbers):
                await workers[i % chains].append(_record(n, "tpp-demo" if n % 2 else "tpp-other"))
            for worker in workers:
                await worker.checkpoint()
        finally:
            for worker in workers:
                await worker.close()
            await client.aclose()
        return [worker.chain_id for worker in workers]
    return asyncio.run(go())


@pytest.fixture(name="env")
def archive_env(redis_url, tmp_path, monkeypatch):
    """The CLI's environment: this Redis, a var dir, and the signing key's files."""
    key = tmp_path / "audit-signing.key"
    key.write_bytes(SIGNING_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("OBGW_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("OBGW_AUDIT_SIGNING_KEY", str(key))
    return tmp_path


def checkpoints(root: Path) -> Path:
    return root / "var" / "audit" / "checkpoints.jsonl"


def archive_dir(root: Path) -> Path:
    return root / "var" / "audit" / "archive"


_CLIENTS: list[redis.Redis] = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def client_of(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    _CLIENTS.append(client)
    return client


def archiver(redis_url: str, root: Path, **options) -> Archiver:
    options.setdefault("live_seconds", 0)
    return Archiver(client_of(redis_url), archive_dir(root), SIGNING_KEY, **options)


def stream_length(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.xlen(names.AUDIT_STREAM))
    finally:
        client.close()


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def all_records(redis_url: str, root: Path) -> list[dict]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [record for _, record in ArchivedLog(AuditReader(client), archive_dir(root)).records()]
    finally:
        client.close()


def test_archived_records_leave_redis_only_once_on_disk_and_the_whole_log_still_verifies(env, redis_url, capsys):
    append(redis_url, checkpoints(env), range(25))
    report = archiver(redis_url, env, segment_records=10).run()
    assert report is not None and (report.segments, report.records, report.trimmed) == (3, 25, 25)
    assert stream_length(redis_url) == 0
    manifest = read_manifest(archive_dir(env))
    assert [e["segment"] for e in manifest.entries] == [segment_name(n) for n in (1, 2, 3)]
    assert [e["records"] for e in manifest.entries] == [10, 10, 5]
    assert all(e["sig"] and e["key"] for e in manifest.entries)
    assert all((archive_dir(env) / e["segment"]).stat().st_mode & 0o077 == 0 for e in manifest.entries)
    append(redis_url, checkpoints(env), range(25, 31))  # new chains, live only

    code, out, err = run_cli(capsys, "audit", "verify")
    assert code == 0, err
    assert "audit log intact: 31 records in 4 chains" in out
    assert "archive: 3 segments verified against the manifest signed by" in out

    # A chain that goes on across segments and into the live stream.
    async def across() -> None:
        client = async_client(redis_url)
        chain = AuditChain(client, checkpoints(env), signer=SIGNING_KEY)
        try:
            await chain.append(_record(40))
            await asyncio.to_thread(archiver(redis_url, env).run)
            await chain.append(_record(41))
        finally:
            await chain.close()
            await client.aclose()
    asyncio.run(across())
    code, out, err = run_cli(capsys, "audit", "verify")
    assert code == 0, err
    assert "audit log intact: 33 records" in out


def test_search_tail_and_export_read_the_archive_and_the_live_stream_as_one_log(env, redis_url, capsys, tmp_path):
    append(redis_url, checkpoints(env), range(12))
    archiver(redis_url, env, segment_records=5).run()
    append(redis_url, checkpoints(env), range(12, 20))
    assert stream_length(redis_url) == 8

    code, out, _ = run_cli(capsys, "audit", "search", "--json", "--client", "tpp-demo")
    assert code == 0
    found = [orjson.loads(line)["interaction_id"] for line in out.splitlines()]
    assert found == [_record(n).interaction_id for n in range(20) if n % 2]  # oldest first, across the boundary

    code, out, _ = run_cli(capsys, "audit", "tail", "-n", "10", "--json")
    assert [orjson.loads(line)["interaction_id"] for line in out.splitlines()] == \
        [_record(n).interaction_id for n in range(10, 20)]

    exported = tmp_path / "export.jsonl"
    assert run_cli(capsys, "audit", "export", "-o", str(exported))[0] == 0
    assert len(exported.read_bytes().splitlines()) == 20
    code, out, err = run_cli(capsys, "audit", "verify", "--file", str(exported))
    assert code == 0, err


def test_a_changed_segment_is_named_by_verify(env, redis_url, capsys):
    append(redis_url, checkpoints(env), range(12))
    archiver(redis_url, env, segment_records=4).run()
    segment = archive_dir(env) / segment_name(2)
    lines = segment.read_bytes().splitlines()
    lines[1] = lines[1].replace(b'"status":200', b'"status":204')
    segment.write_bytes(b"\n".join(lines) + b"\n")

    code, _, err = run_cli(capsys, "audit", "verify")
    assert code == 1
    assert f"archive segment {segment_name(2)}: was changed" in err


def _unsigned_change(entry: dict) -> bytes:
    return orjson.dumps(entry | {"records": 3})


def _signed_by_another_key(entry: dict) -> bytes:
    return orjson.dumps(sign_entry(Ed25519PrivateKey.generate(),
                                   {k: v for k, v in entry.items() if k not in ("key", "sig")}))


@pytest.mark.parametrize("forge", [_unsigned_change, _signed_by_another_key])
def test_a_manifest_line_changed_or_signed_with_another_key_fails_verify_naming_it(env, redis_url, capsys, forge):
    """Whoever rewrites a manifest line without the signing key (to cover a changed segment): verify names it."""
    append(redis_url, checkpoints(env), range(8))
    archiver(redis_url, env, segment_records=4).run()
    manifest = archive_dir(env) / MANIFEST
    lines = manifest.read_bytes().splitlines()
    lines[1] = forge(orjson.loads(lines[1]))
    manifest.write_bytes(b"\n".join(lines) + b"\n")

    code, _, err = run_cli(capsys, "audit", "verify")
    assert code == 1
    assert f"archive manifest {manifest} line 2: is not signed by the audit key" in err


def test_the_last_segment_removed_with_its_manifest_line_fails_verify(env, redis_url, capsys):
    append(redis_url, checkpoints(env), range(8))
    archiver(redis_url, env, segment_records=4).run()
    manifest = archive_dir(env) / MANIFEST
    manifest.write_bytes(manifest.read_bytes().splitlines(keepends=True)[0])
    (archive_dir(env) / segment_name(2)).unlink()

    code, _, err = run_cli(capsys, "audit", "verify")
    assert code == 1 and "does not hold the line Redis committed (line 2" in err


def test_a_segment_record_changed_with_the_manifest_resigned_is_named_by_the_chain_check(env, redis_url, capsys):
    """Whoever holds the signing key and rewrites a segment and its manifest line still breaks the hash chain: verify
    names the record and the segment it is in."""
    append(redis_url, checkpoints(env), range(8))
    archiver(redis_url, env, segment_records=4).run()
    segment = archive_dir(env) / segment_name(1)
    data = segment.read_bytes().replace(b'"status":200', b'"status":204', 1)
    segment.write_bytes(data)
    manifest = archive_dir(env) / MANIFEST
    lines = manifest.read_bytes().splitlines()
    entries = [orjson.loads(line) for line in lines]
    entries[0]["sha256"] = hashlib.sha256(data).hexdigest()
    resigned: list[bytes] = []
    for entry in entries:
        entry = {k: v for k, v in entry.items() if k not in ("key", "sig")}
        if resigned:
            entry["prev"] = hashlib.sha256(resigned[-1]).hexdigest()
        resigned.append(orjson.dumps(sign_entry(SIGNING_KEY, entry)))
    manifest.write_bytes(b"\n".join(resigned) + b"\n")
    client = redis.Redis.from_url(redis_url)
    client.hset(names.AUDIT_ARCHIVE, "manifest", hashlib.sha256(resigned[-1]).hexdigest())
    client.close()

    code, _, err = run_cli(capsys, "audit", "verify")
    assert code == 1
    assert "changed: its content does not match its hash" in err and f"in archive segment {segment_name(1)}" in err


def test_expired_segments_go_only_with_a_signed_manifest_line_and_the_rest_still_verifies(env, redis_url, capsys):
    append(redis_url, checkpoints(env), range(12))
    archiver(redis_url, env, segment_records=4).run()
    append(redis_url, checkpoints(env), range(12, 16))
    later = time.time() + 3 * 86_400
    report = archiver(redis_url, env, live_seconds=86_400 * 10, keep_days=2, clock=lambda: later).run()
    assert report is not None and report.deleted == 3 and report.records == 0
    manifest = read_manifest(archive_dir(env))
    assert [e.get("deleted") for e in manifest.entries[3:]] == [segment_name(n) for n in (1, 2, 3)]
    assert not list(archive_dir(env).glob("segment-*"))

    code, out, err = run_cli(capsys, "audit", "verify")
    assert code == 0, err
    assert "audit log intact: 4 records" in out and "3 deleted by retention" in out

    # A segment deleted without its signed line: named.
    append(redis_url, checkpoints(env), range(16, 20))
    archiver(redis_url, env).run()
    last = read_manifest(archive_dir(env)).entries[-1]["segment"]
    (archive_dir(env) / last).unlink()
    code, _, err = run_cli(capsys, "audit", "verify")
    assert code == 1 and f"archive segment {last}: is missing" in err


def test_archiving_is_on_by_default_for_a_day_and_archives_nothing_younger(env, redis_url, capsys):
    append(redis_url, checkpoints(env), range(5))
    code, out, _ = run_cli(capsys, "audit", "archive")
    assert code == 0 and "archived 0 records" in out
    assert stream_length(redis_url) == 5
    code, out, _ = run_cli(capsys, "audit", "archive", "--all")
    assert code == 0 and "archived 5 records in 1 segments, trimmed 5 from Redis" in out
    assert stream_length(redis_url) == 0


def test_an_archive_directory_redis_never_committed_to_stops_archiving_and_trims_nothing(env, redis_url, tmp_path):
    append(redis_url, checkpoints(env), range(6))
    archiver(redis_url, env, segment_records=3).run()
    append(redis_url, checkpoints(env), range(6, 9))
    other = Archiver(client_of(redis_url), tmp_path / "another-node", SIGNING_KEY, live_seconds=0)
    with pytest.raises(ArchiveError, match="is not the one Redis committed to"):
        other.run()
    assert stream_length(redis_url) == 3
    assert len(all_records(redis_url, env)) == 9


def test_a_short_segment_waits_one_more_live_window_so_segments_stay_few_and_large(env, redis_url):
    append(redis_url, checkpoints(env), range(5))
    now = time.time()
    # Past a 60 s live window but not yet 60 s more: too few records for a segment of 10, so they wait.
    report = archiver(redis_url, env, live_seconds=60, segment_records=10, clock=lambda: now + 90).run()
    assert report is not None and report.records == 0 and stream_length(redis_url) == 5
    # Enough for a whole segment: written at once.
    report = archiver(redis_url, env, live_seconds=60, segment_records=4, clock=lambda: now + 90).run()
    assert report is not None and (report.segments, report.records) == (1, 4)
    # Waited long enough: the short one goes too.
    report = archiver(redis_url, env, live_seconds=60, segment_records=10, clock=lambda: now + 125).run()
    assert report is not None and (report.segments, report.records) == (1, 1) and stream_length(redis_url) == 0


def test_a_reader_that_an_archiver_overtakes_still_reads_every_record_once(env, redis_url):
    """verify, search or export reading while the gateway archives and trims: records moved to a segment under the
    reader are read from the segment, forwards and backwards."""
    append(redis_url, checkpoints(env), range(30), chains=1)
    archiver(redis_url, env, segment_records=5).run()  # 30 live → archived; then 30 more live
    append(redis_url, checkpoints(env), range(30, 60), chains=1)
    expected = [_record(n).interaction_id for n in range(60)]

    log = ArchivedLog(AuditReader(client_of(redis_url)), archive_dir(env))
    forwards = log.records(batch=4)
    seen = [next(forwards)[1]["interaction_id"] for _ in range(33)]  # into the live stream
    archiver(redis_url, env, segment_records=7).run()  # archives and trims the rest under the reader
    assert stream_length(redis_url) == 0
    seen += [record["interaction_id"] for _, record in forwards]
    assert seen == expected

    append(redis_url, checkpoints(env), range(60, 70), chains=1)
    log = ArchivedLog(AuditReader(client_of(redis_url)), archive_dir(env))
    backwards = log.backwards(batch=3)
    seen = [next(backwards)["interaction_id"] for _ in range(4)]
    archiver(redis_url, env, segment_records=4).run()
    seen += [record["interaction_id"] for record in backwards]
    assert seen == [_record(n).interaction_id for n in reversed(range(70))]


def test_commits_a_failover_lost_are_rolled_forward_from_the_fsynced_manifest(env, redis_url, capsys):
    append(redis_url, checkpoints(env), range(12))
    archiver(redis_url, env, segment_records=4).run()
    manifest = read_manifest(archive_dir(env))
    client = client_of(redis_url)
    client.hset(names.AUDIT_ARCHIVE, mapping={"manifest": manifest.digest(0), "n": 1,
                                              "last": manifest.entries[0]["last"]})  # lines 2, 3 lost

    report = archiver(redis_url, env).run()
    assert report is not None and report.recovered and report.records == 0
    assert client.hget(names.AUDIT_ARCHIVE, "manifest").decode() == manifest.last_digest
    code, out, err = run_cli(capsys, "audit", "verify")
    assert code == 0 and "audit log intact: 12 records" in out, err
