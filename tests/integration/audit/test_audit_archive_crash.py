"""Audit retention under faults (issue 19 item 4): an archiver killed (SIGKILL) between writing a segment and its
manifest line, or between the manifest line and the trim, loses no record and duplicates none, and the next archiver
finishes the step; two archivers at once never archive a record twice."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from test_audit_archive import (  # noqa: F401 (archive_env: the `env` fixture)
    SIGNING_KEY,
    _record,
    all_records,
    append,
    archive_dir,
    archive_env,
    checkpoints,
    stream_length,
)

from gateway.audit.archive import Archiver, read_manifest
from gateway.audit.chain import AuditChain
from gateway.cli import main
from gateway.store.redis import async_client

# Runs one archiving step in a child process that kills itself (SIGKILL: no cleanup, no lease given back) at a point.
_CHILD = """
import os, signal, sys
from pathlib import Path
import redis
from gateway.audit import archive
from gateway.audit.key_files import load_signing_key
from gateway.store.audit import ArchiveStore

url, directory, key, point = sys.argv[1:5]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if point == "before-trim":
    ArchiveStore.commit = die          # the segment and its manifest line are on disk, fsynced; Redis not told
elif point == "before-manifest":
    archive.Archiver._append = die     # the segment is on disk, fsynced and renamed; no manifest line
archive.Archiver(redis.Redis.from_url(url), Path(directory), load_signing_key(Path(key)), live_seconds=0,
                 lease_seconds=1, segment_records=4).run()
"""


def _log(redis_url: str, root: Path) -> list[tuple[str, int]]:
    return [(record["chain"], record["seq"]) for record in all_records(redis_url, root)]


def _verify(capsys) -> tuple[int, str]:
    code = main(["audit", "verify"])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("point", ["before-trim", "before-manifest"])
def test_an_archiver_killed_mid_step_loses_and_duplicates_nothing_and_the_next_one_finishes(env, redis_url, capsys,
                                                                                            point):
    append(redis_url, checkpoints(env), range(10))
    before = _log(redis_url, env)
    child = subprocess.run([sys.executable, "-c", _CHILD, redis_url, str(archive_dir(env)),
                            str(env / "audit-signing.key"), point], capture_output=True, text=True, timeout=30)
    assert child.returncode == -9, child.stderr

    assert stream_length(redis_url) == 10  # nothing trimmed
    manifest = read_manifest(archive_dir(env))
    assert len(manifest.entries) == (1 if point == "before-trim" else 0)
    assert (archive_dir(env) / "segment-000001.jsonl").exists()
    assert _log(redis_url, env) == before  # every record once: live records the manifest holds are skipped
    code, text = _verify(capsys)
    assert code == 0 and "audit log intact: 10 records" in text, text

    time.sleep(1.2)  # the dead archiver's lease runs out
    client = redis.Redis.from_url(redis_url)
    try:
        report = Archiver(client, archive_dir(env), SIGNING_KEY, live_seconds=0, segment_records=4).run()
    finally:
        client.close()
    assert report is not None and report.recovered == (point == "before-trim")
    assert report.records == (6 if point == "before-trim" else 10) and stream_length(redis_url) == 0
    assert _log(redis_url, env) == before
    code, text = _verify(capsys)
    assert code == 0 and "audit log intact: 10 records" in text, text


def test_two_archivers_at_work_together_never_archive_a_record_twice(env, redis_url, capsys):
    """Two archivers (two gateway workers) loop over the same log while a worker keeps appending: every record ends
    up exactly once in archive + live, and the log verifies."""
    stop = threading.Event()
    runs: Counter[str] = Counter()

    def archive_loop(name: str) -> None:
        client = redis.Redis.from_url(redis_url)
        try:
            archiver = Archiver(client, archive_dir(env), SIGNING_KEY, live_seconds=0, segment_records=7,
                                holder=name)
            while not stop.is_set():
                report = archiver.run()
                runs[name if report is not None else "busy"] += 1
                time.sleep(0.002)  # as the gateway's workers do between runs (every OBGW_AUDIT_ARCHIVE_SECONDS)
        finally:
            client.close()

    threads = [threading.Thread(target=archive_loop, args=(f"archiver-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()

    async def write() -> str:
        client = async_client(redis_url)
        chain = AuditChain(client, checkpoints(env), signer=SIGNING_KEY)
        try:
            for n in range(300):
                await chain.append(_record(n))
                if n % 50 == 0:
                    await chain.checkpoint()
        finally:
            await chain.close()
            await client.aclose()
        return chain.chain_id

    try:
        chain_id = asyncio.run(write())
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert runs["archiver-0"] + runs["archiver-1"] > 1 and runs["busy"], runs  # they worked, and met

    records = _log(redis_url, env)
    assert records == [(chain_id, seq) for seq in range(1, 301)]
    assert len(read_manifest(archive_dir(env)).segments) > 1
    code, text = _verify(capsys)
    assert code == 0 and "audit log intact: 300 records" in text, text
