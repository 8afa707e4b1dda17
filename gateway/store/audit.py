"""The audit log in Redis: one stream holding every chain's records in arrival order, one hash of each chain's head,
and each consent's recent accesses. The only code that sends the audit log's Redis commands.

`AuditStore` (async) is what a chain writes through: the append script, a chain's head, and every head with the
stream position they were read at (what a checkpoint commits to). `AuditReader` (sync) is what the CLI, the admin
pages and the dashboard read through. A record is stored as the JSON its chain hashed, in the stream field `r`.
`ArchiveStore` (sync) is what the archiver (`audit.archive`) reads the oldest records and trims them through.
Callers: `audit.chain`, `audit.replay`, `audit.query`, `audit.archive`, `admin.pages`, `cli.audit`, `app` (the
dashboard's accesses).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, cast

import orjson
from redis import Redis

from gateway.store import names
from gateway.store.redis import RedisError, ResponseError, WorkerRedis, async_script, sync_script, text

# What "Redis cannot take the batch now" looks like: redis-py's errors, and the builtin ConnectionError/TimeoutError
# (OSError). Not StaleHead: a forked chain is not an outage and must fail loudly.
UNREACHABLE = (RedisError, OSError)

# Stream entries as the gateway's clients read them (RESP2, decode_responses=False): (entry id, {field: value}).
Entries = list[tuple[bytes, dict[bytes, bytes]]]


class StaleHead(Exception):
    """The chain's head in Redis is not the one the batch was chained to: someone else wrote to (or rewrote) it."""


class Batch(Protocol):
    """One append (audit/spool.py's Batch): sealed records moving `chain`'s head from `expected` ("" for a new chain)
    to `head`, with each (recent-access list key, entry) of the accesses among them."""
    @property
    def chain(self) -> str: ...
    @property
    def expected(self) -> str: ...
    @property
    def head(self) -> str: ...
    @property
    def records(self) -> tuple[bytes, ...]: ...
    @property
    def accesses(self) -> tuple[tuple[str, bytes], ...]: ...


class AuditStore:
    def __init__(self, redis: WorkerRedis) -> None:
        self._redis = redis
        self._append = async_script(redis, "audit_append")
        self._heads = async_script(redis, "audit_heads")

    async def append(self, batch: Batch) -> None:
        """One `audit_append.lua` call: stored (or found stored already, a retry after a lost reply) when this
        returns; StaleHead if the chain's head is no longer the one the batch was chained to."""
        try:
            await self._append(keys=[names.AUDIT_STREAM, names.AUDIT_HEADS, *(key for key, _ in batch.accesses)],
                               args=[batch.chain, batch.expected, batch.head, len(batch.records), *batch.records,
                                     *(entry for _, entry in batch.accesses)])
        except ResponseError as exc:
            if str(exc).startswith("STALEHEAD"):
                raise StaleHead(f"audit chain {batch.chain}: head moved under us ({exc})") from None
            raise

    async def head(self, chain: str) -> str:
        """The chain's head as stored ("seq:hash"), "" for a chain with no record in Redis."""
        stored = await self._redis.hget(names.AUDIT_HEADS, chain)
        return text(stored) if stored else ""

    async def heads_at(self) -> tuple[dict[str, str], str]:
        """(every chain's head, the stream's last id), read in one step (`audit_heads.lua`)."""
        flat, at = await self._heads(keys=[names.AUDIT_STREAM, names.AUDIT_HEADS])
        return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}, at.decode()

    @staticmethod
    def accesses_key(consent_id: str) -> str:
        """The consent's recent-access list, as a batch names it (kept in spooled batches too)."""
        return names.consent_accesses(consent_id)


class AuditReader:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def records(self, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        """(stream id, record) from `start` to `end` (stream ids, both included), oldest first, read in batches."""
        while True:
            rows = cast(Entries, self._redis.xrange(names.AUDIT_STREAM, min=start, max=end, count=batch))
            for stream_id, fields in rows:
                yield stream_id.decode(), orjson.loads(fields[b"r"])
            if len(rows) < batch:
                return
            start = "(" + rows[-1][0].decode()

    def entries(self, start: str, end: str, count: int, reverse: bool = False) -> list[tuple[str, dict[str, Any]]]:
        """One batch of (stream id, record) from `start` to `end` (stream ids; "(" excludes), oldest first, or newest
        first with `reverse`."""
        rows = cast(Entries, self._redis.xrevrange(names.AUDIT_STREAM, max=end, min=start, count=count) if reverse
                    else self._redis.xrange(names.AUDIT_STREAM, min=start, max=end, count=count))
        return [(stream_id.decode(), orjson.loads(fields[b"r"])) for stream_id, fields in rows]

    def backwards(self, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[dict[str, Any]]:
        """The records from `end` back to `start`, newest first, read in batches."""
        while True:
            rows = cast(Entries, self._redis.xrevrange(names.AUDIT_STREAM, max=end, min=start, count=batch))
            for _, fields in rows:
                yield orjson.loads(fields[b"r"])
            if len(rows) < batch:
                return
            end = "(" + rows[-1][0].decode()

    def tail(self, count: int) -> list[dict[str, Any]]:
        """The latest `count` records, oldest first."""
        rows = cast(Entries, self._redis.xrevrange(names.AUDIT_STREAM, count=count))
        return [orjson.loads(fields[b"r"]) for _, fields in reversed(rows)]

    def follow(self, after: str = "$", block_ms: int = 1000) -> Iterator[dict[str, Any]]:
        """New records as they arrive (blocking reads); the caller stops iterating to end."""
        last = after
        while True:
            found = cast(list[tuple[bytes, Entries]], self._redis.xread({names.AUDIT_STREAM: last}, block=block_ms))
            for _, entries in found or ():
                for stream_id, fields in entries:
                    last = stream_id.decode()
                    yield orjson.loads(fields[b"r"])

    def archive_committed(self) -> tuple[str, int, str]:
        """What Redis last committed of the archive (`archive_committed`)."""
        return archive_committed(self._redis)

    def heads(self) -> dict[str, str]:
        """Every chain's head ("seq:hash"), by chain id."""
        return {text(k): text(v) for k, v in self._redis.hgetall(names.AUDIT_HEADS).items()}

    def recent_accesses(self, consent_id: str, count: int = 10) -> list[dict[str, Any]]:
        """The consent's latest accesses, newest first (kept by the append script)."""
        return [orjson.loads(raw) for raw in self._redis.lrange(names.consent_accesses(consent_id), 0, count - 1)]


class ArchiveConflict(Exception):
    """Redis did not take an archive step: another archiver holds the lease, or Redis committed another manifest."""


class ArchiveStore:
    """The archiver's view of the stream: the oldest records as stored, the lease, and the commit that trims."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._lease = sync_script(redis, "audit_archive_lease")
        self._commit = sync_script(redis, "audit_archive_commit")

    def take_lease(self, holder: str, lease_ms: int) -> bool:
        """True if `holder` holds the archiver's lease (taken now, or renewed) for `lease_ms`."""
        return int(self._lease(keys=[names.AUDIT_ARCHIVE_LEASE], args=[holder, lease_ms])) == 1

    def release_lease(self, holder: str) -> None:
        self._lease(keys=[names.AUDIT_ARCHIVE_LEASE], args=[holder, 0])

    def committed(self) -> tuple[str, int, str]:
        return archive_committed(self._redis)

    def entries(self, after: str, before: str, count: int) -> list[tuple[str, bytes]]:
        """Up to `count` (stream id, record JSON exactly as stored) after `after` ("" from the start) and up to
        `before` (both stream ids), oldest first."""
        rows = cast(Entries, self._redis.xrange(names.AUDIT_STREAM, min="(" + after if after else "-", max=before,
                                                count=count))
        return [(stream_id.decode(), fields[b"r"]) for stream_id, fields in rows]

    def commit(self, holder: str, expected: str, digest: str, number: int, last: str, minid: str) -> int:
        """Record the manifest line `digest` (number `number`, archiving up to stream id `last`) and trim every record
        before `minid` ("" trims nothing), if `holder` holds the lease and Redis's manifest line is `expected` (or
        already `digest`: a retry). Returns how many records were trimmed; ArchiveConflict otherwise."""
        try:
            return int(self._commit(keys=[names.AUDIT_STREAM, names.AUDIT_ARCHIVE, names.AUDIT_ARCHIVE_LEASE],
                                    args=[holder, expected, digest, number, last, minid]))
        except ResponseError as exc:
            if str(exc).startswith(("NOTLEASE", "STALEARCHIVE")):
                raise ArchiveConflict(str(exc)) from None
            raise

    def extent(self) -> tuple[int, str]:
        """(how many records the stream holds, the last one's stream id, "" when empty)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.xlen(names.AUDIT_STREAM)
        pipe.xrevrange(names.AUDIT_STREAM, count=1)
        length, last = cast(tuple[int, Entries], tuple(pipe.execute()))
        return int(length), last[0][0].decode() if last else ""


def archive_committed(redis: Redis) -> tuple[str, int, str]:
    """(the digest of the archive manifest line Redis last committed, "" before any; its number; the last stream id
    archived, "" before any)."""
    digest, number, last = cast(list[bytes | None], redis.hmget(names.AUDIT_ARCHIVE, ["manifest", "n", "last"]))
    return (text(digest) if digest else ""), int(number or 0), (text(last) if last else "")
