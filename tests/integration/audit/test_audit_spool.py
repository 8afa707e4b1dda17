"""The audit spool against a real redis-server that goes away and comes back: nothing lost, nothing doubled.

Each test runs its own redis-server on a fixed port and password, so the chain's client, built once from the URL,
really loses its Redis and gets it back at the same address (a new EmbeddedRedis would pick another port and password).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest
import redis
from support.ports import free_port

from gateway.audit import spool as spool_module
from gateway.audit.chain import AuditChain, AuditChainError, read_checkpoints, verify
from gateway.audit.record import AuditRecord
from gateway.children import stop
from gateway.store.audit import AuditReader
from gateway.store.redis import async_client

CONSENT = "c-spool"


class Network:
    """Between the chain and Redis: `down` refuses every append (the chain's and its replay's); `lose` names appends
    whose reply is lost (the script runs in Redis, then the client sees a ConnectionError)."""

    def __init__(self, chain: AuditChain) -> None:
        self._append = chain._store.append
        chain._store.append = self
        self.down = False
        self.lose: set[int] = set()
        self.calls = 0

    async def __call__(self, batch):
        if self.down:
            raise redis.ConnectionError("the network is down (test)")
        self.calls += 1
        result = await self._append(batch)
        if self.calls in self.lose:
            raise redis.ConnectionError("the reply was lost (test)")
        return result


def _record(n: int, client_id: str = "tpp-demo") -> AuditRecord:
    return AuditRecord(ts=f"2026-11-23T10:00:{n % 60:02d}.000+00:00", interaction_id=_ids(n)[0], method="GET",
                       route="/open-banking/v3.1/aisp/accounts", status=503, decision="refuse",
                       reason="admission.unavailable", latency_ms=1.5, client_id=client_id, consent_id=CONSENT,
                       cert_thumbprint="abc")


def _ids(*numbers: int) -> list[str]:
    return [f"00000000-0000-4000-8000-{n:012d}" for n in numbers]


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _stored(url: str, checkpoints=()):
    """What `obgw audit verify` sees, and the interaction ids in stream order."""
    client = redis.Redis.from_url(url)
    try:
        heads = AuditReader(client).heads()  # before the records, as the CLI reads them
        records = list(AuditReader(client).records())
        result = verify(iter(records), heads=heads, checkpoints=checkpoints)
        return result, [r["interaction_id"] for _, r in records]
    finally:
        client.close()


async def _eventually(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)


class _CountingFsync:
    """The spool module's `os`, counting fsync calls."""

    def __init__(self) -> None:
        self.fsyncs = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def fsync(self, fd: int) -> None:
        self.fsyncs += 1
        os.fsync(fd)


def test_records_appended_while_redis_is_down_are_spooled_then_replayed_in_order(server, tmp_path, monkeypatch):
    checkpoints = tmp_path / "audit" / "checkpoints.jsonl"
    disk = _CountingFsync()
    monkeypatch.setattr(spool_module, "os", disk)

    async def go() -> Path:
        client = async_client(server.url)
        chain = AuditChain(client, checkpoints)
        try:
            for n in range(3):
                await chain.append(_record(n))
            assert chain.spool_path is None  # nothing spooled while Redis answers

            server.stop()
            await asyncio.gather(*(chain.append(_record(n)) for n in range(3, 6)))  # one group commit
            for n in range(6, 8):
                await chain.append(_record(n))
            path = chain.spool_path
            assert path == tmp_path / "audit" / "spool" / f"{chain.chain_id}.jsonl"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            lines = _lines(path)  # on disk, and fsync'ed, before each append returned
            assert disk.fsyncs >= len(lines) == 3
            assert [r["interaction_id"] for line in lines for r in line["records"]] == _ids(3, 4, 5, 6, 7)
            assert [r["seq"] for line in lines for r in line["records"]] == [4, 5, 6, 7, 8]
            assert {line["chain"] for line in lines} == {chain.chain_id}
            assert lines[0]["expected"].startswith("3:")
            assert [line["expected"] for line in lines[1:]] == [line["head"] for line in lines[:-1]]
            assert lines[0]["accesses"][0][0].endswith(CONSENT)

            await chain.checkpoint()  # anchors what Redis holds (seq 3), not the spooled head
            assert [cp["seq"] for cp in read_checkpoints(checkpoints)] == [3]

            server.start()
            await _eventually(lambda: path.stat().st_size == 0)
            for n in range(8, 10):  # after the outage: straight to Redis, same chain
                await chain.append(_record(n))
            assert path.stat().st_size == 0
        finally:
            await chain.close()
            await client.aclose()
        return path

    path = asyncio.run(go())
    assert not path.exists()  # an empty spool is removed at close
    result, ids = _stored(server.url, read_checkpoints(checkpoints))
    assert (result.records, result.chains, result.breach) == (10, 1, None)
    assert ids == _ids(*range(10))
    assert [cp["seq"] for cp in read_checkpoints(checkpoints)] == [3, 10]
    client = redis.Redis.from_url(server.url)
    assert len(AuditReader(client).recent_accesses(CONSENT, count=50)) == 10  # the dashboard's list came back too
    client.close()


def test_verify_never_reports_a_truncation_that_is_waiting_in_the_spool(server, tmp_path):
    checkpoints = tmp_path / "audit" / "checkpoints.jsonl"

    async def go() -> None:
        client = async_client(server.url)
        chain = AuditChain(client, checkpoints)
        network = Network(chain)
        try:
            for n in range(3):
                await chain.append(_record(n))
            network.down = True  # this worker cannot reach Redis; the security team can
            for n in range(3, 7):
                await chain.append(_record(n))
            await chain.checkpoint()
            result, _ = _stored(server.url, read_checkpoints(checkpoints))
            assert (result.records, result.breach) == (3, None)

            network.down = False
            await _eventually(lambda: chain.spool_path.stat().st_size == 0)
            await chain.checkpoint()
        finally:
            await chain.close()
            await client.aclose()

    asyncio.run(go())
    assert [cp["seq"] for cp in read_checkpoints(checkpoints)] == [3, 7]
    result, ids = _stored(server.url, read_checkpoints(checkpoints))
    assert (result.records, result.chains, result.breach) == (7, 1, None)
    assert ids == _ids(*range(7))


def test_a_lost_reply_is_never_stored_twice(server, tmp_path):
    async def go() -> None:
        client = async_client(server.url)
        chain = AuditChain(client, tmp_path / "audit" / "checkpoints.jsonl")
        network = Network(chain)
        try:
            network.lose = {1}  # the first append is stored, but its reply is lost: the batch is spooled
            await chain.append(_record(0))
            assert len(_lines(chain.spool_path)) == 1
            await _eventually(lambda: chain.spool_path.stat().st_size == 0)

            network.down = True
            for n in range(1, 4):  # three batches in the spool
                await chain.append(_record(n))
            assert len(_lines(chain.spool_path)) == 3
            # The replay stores the first two batches but loses the second reply; the next pass must not resend them.
            network.lose, network.calls, network.down = {2}, 0, False
            await _eventually(lambda: chain.spool_path.stat().st_size == 0)
            await chain.append(_record(4))
        finally:
            await chain.close()
            await client.aclose()

    asyncio.run(go())
    result, ids = _stored(server.url)
    assert (result.records, result.chains, result.breach) == (5, 1, None)
    assert ids == _ids(0, 1, 2, 3, 4)


def test_a_forked_chain_still_fails_the_append_and_is_not_spooled(server, tmp_path):
    checkpoints = tmp_path / "audit" / "checkpoints.jsonl"

    async def go() -> None:
        client = async_client(server.url)
        owner = AuditChain(client, checkpoints)
        impostor = AuditChain(client, checkpoints, chain_id=owner.chain_id)  # believes the chain is empty
        try:
            await owner.append(_record(0))
            with pytest.raises(AuditChainError, match="head moved"):
                await impostor.append(_record(1))
            assert impostor.spool_path is None
        finally:
            await owner.close()
            await impostor.close()
            await client.aclose()

    asyncio.run(go())
    result, _ = _stored(server.url)
    assert (result.records, result.breach) == (1, None)


def test_a_spool_that_redis_can_no_longer_take_is_kept_aside_loudly(server, tmp_path, caplog):
    checkpoints = tmp_path / "audit" / "checkpoints.jsonl"
    caplog.set_level(logging.WARNING, logger="obgw.audit")

    async def go() -> Path:
        client = async_client(server.url)
        chain = AuditChain(client, checkpoints)
        network = Network(chain)
        try:
            for n in range(3):
                await chain.append(_record(n))
            await chain.checkpoint()
            network.down = True
            for n in range(3, 5):
                await chain.append(_record(n))
            spool_dir = chain.spool_path.parent
            sync = redis.Redis.from_url(server.url)
            sync.flushall()  # Redis comes back without its data: the spool continues a head Redis no longer has
            sync.close()
            network.down = False
            await _eventually(lambda: any("cannot be appended" in r.getMessage() for r in caplog.records))
            await chain.append(_record(5))  # the worker goes on, from the head Redis holds
        finally:
            await chain.close()
            await client.aclose()
        return spool_dir

    spool_dir = asyncio.run(go())
    [kept] = spool_dir.iterdir()
    assert ".jsonl.stale-" in kept.name
    assert [r["interaction_id"] for line in _lines(kept) for r in line["records"]] == _ids(3, 4)
    result, _ = _stored(server.url, read_checkpoints(checkpoints))
    assert result.breach is not None and "truncated" in result.breach.message  # and `verify` says so


def test_a_spool_that_cannot_be_written_fails_the_append(tmp_path):
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "spool").write_text("a file where the spool directory should be")
    dead = f"redis://127.0.0.1:{free_port()}/0"

    async def go() -> None:
        client = async_client(dead)
        chain = AuditChain(client, tmp_path / "audit" / "checkpoints.jsonl")
        try:
            with pytest.raises(OSError):  # the Audit middleware answers 503 audit.unavailable
                await chain.append(_record(0))
            # The failed batch may have reached Redis (a lost reply), so the head is unknown until Redis answers.
            with pytest.raises((OSError, redis.RedisError)):
                await chain.append(_record(1))
            assert not (tmp_path / "audit" / "spool").is_dir()
        finally:
            await chain.close()
            await client.aclose()

    asyncio.run(go())


class _DiskFullMidLine:
    """The spool module's `os` on a disk that fills up halfway through the next write."""

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd: int, data) -> int:
        os.write(fd, bytes(data[:len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_write_that_fills_the_disk_fails_its_append_and_leaves_the_spool_whole(server, tmp_path, monkeypatch):
    async def go() -> None:
        client = async_client(server.url)
        chain = AuditChain(client, tmp_path / "audit" / "checkpoints.jsonl")
        try:
            server.stop()
            await chain.append(_record(0))
            before = chain.spool_path.read_bytes()
            with monkeypatch.context() as patch:
                patch.setattr(spool_module, "os", _DiskFullMidLine())
                with pytest.raises(OSError, match="No space"):
                    await chain.append(_record(1))  # the caller gets 503 audit.unavailable
            assert chain.spool_path.read_bytes() == before  # no torn line left behind
            await chain.append(_record(2))
            lines = _lines(chain.spool_path)
            assert lines[1]["expected"] == lines[0]["head"]  # chained to what is durable, not to the lost batch
            server.start()
            await _eventually(lambda: chain.spool_path.stat().st_size == 0)
        finally:
            await chain.close()
            await client.aclose()

    asyncio.run(go())
    result, ids = _stored(server.url)
    assert (result.records, result.chains, result.breach) == (2, 1, None)
    assert ids == _ids(0, 2)


def test_a_spool_left_at_close_is_adopted_exactly_once_by_the_next_workers(server, tmp_path, caplog):
    checkpoints = tmp_path / "audit" / "checkpoints.jsonl"
    caplog.set_level(logging.WARNING, logger="obgw.audit")

    async def go() -> None:
        client = async_client(server.url)
        leaving = AuditChain(client, checkpoints)
        server.stop()
        for n in range(3):
            await leaving.append(_record(n))
        path = leaving.spool_path
        await leaving.close()  # Redis still down: the last replay fails and the file stays, unlocked
        assert len(_lines(path)) == 3

        server.start()
        first, second = AuditChain(client, checkpoints), AuditChain(client, checkpoints)
        try:
            first.start()  # one looks for orphans at start, the other at its first append: together
            await asyncio.gather(first.append(_record(10)), second.append(_record(11)))
        finally:
            await first.close()
            await second.close()
            await client.aclose()
        assert not path.exists()

    asyncio.run(go())
    assert sum("adopted the spool" in r.getMessage() for r in caplog.records) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    result, ids = _stored(server.url, read_checkpoints(tmp_path / "audit" / "checkpoints.jsonl"))
    assert (result.records, result.chains, result.breach) == (5, 3, None)
    assert sorted(ids) == _ids(0, 1, 2, 10, 11)
    assert list((tmp_path / "audit" / "spool").iterdir()) == []


_DEAD_WORKER = textwrap.dedent("""
    import asyncio, os, signal, sys
    from pathlib import Path
    from gateway.audit.chain import AuditChain
    from gateway.audit.record import AuditRecord
    from gateway.store.redis import async_client

    BATCHES = int(sys.argv[3])

    def record(n):
        return AuditRecord(ts="2026-11-23T10:00:00.000+00:00", interaction_id=f"00000000-0000-4000-8000-{n:012d}",
                           method="GET", route=None, status=503, decision="refuse", reason="admission.unavailable",
                           latency_ms=0.1)

    async def go():
        chain = AuditChain(async_client(sys.argv[1]), Path(sys.argv[2]))
        await asyncio.gather(*(chain.append(record(n)) for n in range(2)))
        for n in range(2, BATCHES + 1):  # enough batches that replaying them takes a while: the adopters overlap
            await chain.append(record(n))
        print(chain.spool_path, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # dies holding its spool: no close, no replay

    asyncio.run(go())
""")

_ADOPTER = textwrap.dedent("""
    import asyncio, logging, sys, time
    from pathlib import Path
    from gateway.audit.chain import AuditChain
    from gateway.audit.record import AuditRecord
    from gateway.store.redis import async_client

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    go_file = Path(sys.argv[3])
    deadline = time.monotonic() + 10
    while not go_file.exists() and time.monotonic() < deadline:  # start together
        time.sleep(0.005)

    async def go():
        client = async_client(sys.argv[1])
        chain = AuditChain(client, Path(sys.argv[2]))
        await chain.append(AuditRecord(ts="2026-11-23T10:00:01.000+00:00", interaction_id=sys.argv[4], method="GET",
                                       route=None, status=404, decision="refuse", reason="route.not_found",
                                       latency_ms=0.1))
        await chain.close()
        await client.aclose()

    asyncio.run(go())
""")


def test_an_orphan_spool_of_a_killed_worker_is_replayed_once_by_two_racing_workers(server, tmp_path):
    checkpoints = tmp_path / "audit" / "checkpoints.jsonl"
    dead = f"redis://127.0.0.1:{free_port()}/0"
    batches = 100
    killed = subprocess.run([sys.executable, "-c", _DEAD_WORKER, dead, str(checkpoints), str(batches)],
                            capture_output=True, text=True, timeout=15)
    assert killed.returncode == -9, killed.stderr
    orphan = Path(killed.stdout.strip())
    assert len(_lines(orphan)) == batches

    go_file = tmp_path / "go"
    adopters = [subprocess.Popen([sys.executable, "-c", _ADOPTER, server.url, str(checkpoints), str(go_file), i],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for i in _ids(1000, 1001)]
    try:
        time.sleep(0.5)
        go_file.touch()
        outputs = [a.communicate(timeout=15)[0] for a in adopters]
    finally:
        for adopter in adopters:
            stop(adopter)
    assert [a.returncode for a in adopters] == [0, 0], outputs
    assert sum(output.count("adopted the spool") for output in outputs) == 1, outputs
    assert list(orphan.parent.iterdir()) == []  # replayed and deleted; nothing set aside as unreplayable
    result, ids = _stored(server.url, read_checkpoints(checkpoints))
    assert (result.records, result.chains, result.breach) == (batches + 1 + 2, 3, None)
    assert sorted(ids) == sorted(_ids(*range(batches + 1), 1000, 1001))
