"""The audit log in Redis: per shard (store/names.py), a stream holding its chains' records in arrival order, a hash
of each chain's head, and each consent's recent accesses. The only code that sends the audit log's Redis commands.

Shards spread the audit writes over a Redis Cluster's masters: each chain writes to one shard, in one round trip.
Readers merge every shard ever written (shard 0 and those listed in `names.AUDIT_SHARDS`) by stream id, which starts
with the arrival time: one log in arrival order, as with one shard.

`AuditStore` (async) is what a chain writes through: the append script, a chain's head, and every head with the
stream position they were read at (what a checkpoint commits to). `AuditReader` (sync) is what the CLI, the admin
pages and the dashboard read through. A record is stored as the JSON its chain hashed, in the stream field `r`.
`ArchiveStore` (sync) is what the archiver (`audit.archive`) reads the oldest records and trims them through.
Callers: `audit.chain`, `audit.replay`, `audit.query`, `audit.archive`, `admin.pages`, `cli.audit`, `app` (the
dashboard's accesses).
"""
from __future__ import annotations

import asyncio
import heapq
import re
import time
from collections.abc import Iterable, Iterator
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


MAX_ID_SEQ = 18446744073709551615  # the largest sequence part of a stream id


def stream_position(stream_id: str) -> tuple[int, int]:
    """A stream id ("<ms>-<n>") as a sortable pair: arrival order across shards."""
    ms, _, n = stream_id.partition("-")
    return int(ms), int(n or 0)


class Batch(Protocol):
    """One append (audit/spool.py's Batch): sealed records moving `chain`'s head from `expected` ("" for a new chain)
    to `head` in audit shard `shard`, with each (recent-access list key, entry) of the accesses among them."""
    @property
    def chain(self) -> str: ...
    @property
    def shard(self) -> str: ...
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
        self._listed = {names.AUDIT_TAG}  # shards this process has seen in `names.AUDIT_SHARDS`

    async def append(self, batch: Batch) -> None:
        """One `audit_append.lua` call: stored (or found stored already, a retry after a lost reply) when this
        returns; StaleHead if the chain's head is no longer the one the batch was chained to. A shard other than 0
        is listed for readers first, once per process (a second round trip for its first batch only)."""
        if batch.shard not in self._listed:
            await self.list_shard(batch.shard)
        try:
            await self._append(keys=[names.audit_stream(batch.shard), names.audit_heads(batch.shard),
                                     *(key for key, _ in batch.accesses)],
                               args=[batch.chain, batch.expected, batch.head, len(batch.records), *batch.records,
                                     *(entry for _, entry in batch.accesses)])
        except ResponseError as exc:
            if str(exc).startswith("STALEHEAD"):
                raise StaleHead(f"audit chain {batch.chain}: head moved under us ({exc})") from None
            raise

    async def list_shard(self, shard: str) -> None:
        """List `shard` in `names.AUDIT_SHARDS`, where readers find it. Idempotent: a chain repeats it with each
        checkpoint, so a listing a failover of shard 0's master lost (it is not WAITed for) comes back within one."""
        if shard != names.AUDIT_TAG:
            await self._redis.sadd(names.AUDIT_SHARDS, shard)
        self._listed.add(shard)

    async def head(self, chain: str, shard: str = names.AUDIT_TAG) -> str:
        """The chain's head as stored in its shard ("seq:hash"), "" for a chain with no record in Redis."""
        stored = await self._redis.hget(names.audit_heads(shard), chain)
        return text(stored) if stored else ""

    async def heads_at(self) -> tuple[dict[str, str], str]:
        """(every chain's head, a stream position `at`), each shard's read in one step (`audit_heads.lua`), so
        every record stored at or before `at` belongs to a head in the map. With one shard, `at` is its last id;
        with several, the lowest of each shard's bound: its last id, or the millisecond before it was read if later
        (no record can be added to a stream with an id below its last one or below the current time)."""
        tags = shard_tags(await self._redis.smembers(names.AUDIT_SHARDS))
        read = await asyncio.gather(*(self._heads(keys=[names.audit_stream(tag), names.audit_heads(tag)])
                                      for tag in tags))
        heads = {flat[i].decode(): flat[i + 1].decode() for flat, _, _ in read for i in range(0, len(flat), 2)}
        if len(read) == 1:
            return heads, read[0][1].decode()
        bounds = (max(stream_position(last.decode()), (int(now) - 1, MAX_ID_SEQ)) for _, last, now in read)
        low = min(bounds)
        return heads, f"{low[0]}-{low[1]}"

    @staticmethod
    def accesses_key(consent_id: str, shard: str = names.AUDIT_TAG) -> str:
        """The consent's recent-access list in the chain's shard, as a batch names it (kept in spooled batches)."""
        return names.consent_accesses(consent_id, shard)


_SHARD_TAG = re.compile(r"audit-\d+\.\d+")  # what names.audit_shard_tag makes (shard 0 is "audit")


def shard_tags(listed: Iterable[bytes | str]) -> list[str]:
    """Every audit shard to read: shard 0 first, then those listed in `names.AUDIT_SHARDS`, sorted. A listed tag
    that audit_shard_tag could not have made is refused: it becomes a key's tag and an archive directory's name, so
    whoever can write Redis must not steer the archiver outside its directory."""
    tags = {text(tag) for tag in listed} - {names.AUDIT_TAG}
    strange = sorted(tag for tag in tags if not _SHARD_TAG.fullmatch(tag))
    if strange:
        raise ValueError(f"{names.AUDIT_SHARDS} lists what is not an audit shard: {strange!r}")
    return [names.AUDIT_TAG, *sorted(tags)]


class AuditReader:
    """Every shard's records merged in stream-id (arrival) order; `shard(tag)` reads one shard alone."""

    def __init__(self, redis: Redis, shard: str | None = None) -> None:
        self._redis = redis
        self._shard = shard

    def shards(self) -> list[str]:
        """The shards read: this reader's one, or every shard ever written."""
        if self._shard is not None:
            return [self._shard]
        return shard_tags(cast(set[bytes], self._redis.smembers(names.AUDIT_SHARDS)))

    def shard(self, tag: str) -> AuditReader:
        return AuditReader(self._redis, tag)

    def _parts(self) -> list[AuditReader]:
        return [self] if self._shard is not None else [self.shard(tag) for tag in self.shards()]

    @property
    def _stream(self) -> str:
        return names.audit_stream(self._shard or names.AUDIT_TAG)

    def records(self, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        """(stream id, record) from `start` to `end` (stream ids, both included), oldest first, read in batches."""
        parts = self._parts()
        if len(parts) > 1:
            yield from heapq.merge(*(part.records(start, end, batch) for part in parts), key=_arrival)
            return
        while True:
            rows = cast(Entries, self._redis.xrange(self._stream, min=start, max=end, count=batch))
            for stream_id, fields in rows:
                yield stream_id.decode(), orjson.loads(fields[b"r"])
            if len(rows) < batch:
                return
            start = "(" + rows[-1][0].decode()

    def entries(self, start: str, end: str, count: int, reverse: bool = False) -> list[tuple[str, dict[str, Any]]]:
        """One batch of (stream id, record) from `start` to `end` (stream ids; "(" excludes), oldest first, or newest
        first with `reverse`."""
        parts = self._parts()
        if len(parts) > 1:
            rows = [row for part in parts for row in part.entries(start, end, count, reverse)]
            return sorted(rows, key=_arrival, reverse=reverse)[:count]
        found = cast(Entries, self._redis.xrevrange(self._stream, max=end, min=start, count=count) if reverse
                     else self._redis.xrange(self._stream, min=start, max=end, count=count))
        return [(stream_id.decode(), orjson.loads(fields[b"r"])) for stream_id, fields in found]

    def backwards(self, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[dict[str, Any]]:
        """The records from `end` back to `start`, newest first, read in batches."""
        for _, record in self._backwards(start, end, batch):
            yield record

    def _backwards(self, start: str, end: str, batch: int) -> Iterator[tuple[str, dict[str, Any]]]:
        parts = self._parts()
        if len(parts) > 1:
            yield from heapq.merge(*(part._backwards(start, end, batch) for part in parts), key=_arrival,
                                   reverse=True)
            return
        while True:
            rows = self.entries(start, end, batch, reverse=True)
            yield from rows
            if len(rows) < batch:
                return
            end = "(" + rows[-1][0]

    def tail(self, count: int) -> list[dict[str, Any]]:
        """The latest `count` records, oldest first."""
        return [record for _, record in reversed(self.entries("-", "+", count, reverse=True))]

    def follow(self, after: str = "$", block_ms: int = 1000) -> Iterator[dict[str, Any]]:
        """New records as they arrive (blocking reads; with several shards, polled every 0.2 s at most while none
        comes), in arrival order; the caller stops iterating to end. A shard first written meanwhile is read whole."""
        streams: dict[Any, Any] = {names.audit_stream(tag): after for tag in self.shards()}
        # "$" means "arriving during this call": resolved to each stream's newest id now, so a read that finds
        # nothing (or a shard listed later, which turns the blocking read into polling) still starts from here.
        if after == "$":
            for key in streams:
                newest = cast(Entries, self._redis.xrevrange(key, count=1))
                streams[key] = newest[0][0].decode() if newest else "0-0"
        while True:
            if len(streams) == 1:
                found = cast(list[tuple[bytes, Entries]], self._redis.xread(streams, block=block_ms)) or []
            else:  # a Cluster refuses one read of keys in several slots
                found = [hit for key, last in streams.items()
                         for hit in cast(list[tuple[bytes, Entries]], self._redis.xread({key: last})) or []]
                if not found:
                    time.sleep(min(block_ms, 200) / 1000)
            rows = []
            for key, entries in found:
                for stream_id, fields in entries:
                    streams[text(key)] = stream_id.decode()
                    rows.append((stream_id.decode(), orjson.loads(fields[b"r"])))
            for _, record in sorted(rows, key=_arrival):
                yield record
            if self._shard is None:
                for tag in self.shards():
                    streams.setdefault(names.audit_stream(tag), "0-0")

    def archive_committed(self) -> tuple[str, int, str]:
        """What Redis last committed of this shard's archive (`archive_committed`; shard 0's when merging)."""
        return archive_committed(self._redis, self._shard or names.AUDIT_TAG)

    def heads(self) -> dict[str, str]:
        """Every chain's head ("seq:hash"), by chain id."""
        return {text(k): text(v) for part in self._parts()
                for k, v in self._redis.hgetall(names.audit_heads(part._shard or names.AUDIT_TAG)).items()}

    def recent_accesses(self, consent_id: str, count: int = 10) -> list[dict[str, Any]]:
        """The consent's latest accesses across shards, newest first (kept by the append script). One round trip
        while shard 0 is the only one."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.smembers(names.AUDIT_SHARDS)
        pipe.lrange(names.consent_accesses(consent_id, self._shard or names.AUDIT_TAG), 0, count - 1)
        listed, found = cast(tuple[set[bytes], list[bytes]], tuple(pipe.execute()))
        others = shard_tags(listed)[1:] if self._shard is None else []
        if others:
            pipe = self._redis.pipeline(transaction=False)
            for tag in others:
                pipe.lrange(names.consent_accesses(consent_id, tag), 0, count - 1)
            found = [*found, *(raw for rows in pipe.execute() for raw in rows)]
        accesses = [orjson.loads(raw) for raw in found]
        return sorted(accesses, key=lambda access: str(access.get("ts")), reverse=True)[:count] if others \
            else accesses


def _arrival(row: tuple[str, Any]) -> tuple[int, int]:
    return stream_position(row[0])


class ArchiveConflict(Exception):
    """Redis did not take an archive step: another archiver holds the lease, or Redis committed another manifest."""


class ArchiveStore:
    """The archiver's view of one shard's stream: the oldest records as stored, the lease, and the commit that trims."""

    def __init__(self, redis: Redis, shard: str = names.AUDIT_TAG) -> None:
        self._redis = redis
        self.shard = shard
        self._stream, self._state = names.audit_stream(shard), names.audit_archive(shard)
        self._lease_key = names.audit_archive_lease(shard)
        self._lease = sync_script(redis, "audit_archive_lease")
        self._commit = sync_script(redis, "audit_archive_commit")

    def take_lease(self, holder: str, lease_ms: int) -> bool:
        """True if `holder` holds the archiver's lease (taken now, or renewed) for `lease_ms`."""
        return int(self._lease(keys=[self._lease_key], args=[holder, lease_ms])) == 1

    def release_lease(self, holder: str) -> None:
        self._lease(keys=[self._lease_key], args=[holder, 0])

    def committed(self) -> tuple[str, int, str]:
        return archive_committed(self._redis, self.shard)

    def entries(self, after: str, before: str, count: int) -> list[tuple[str, bytes]]:
        """Up to `count` (stream id, record JSON exactly as stored) after `after` ("" from the start) and up to
        `before` (both stream ids), oldest first."""
        rows = cast(Entries, self._redis.xrange(self._stream, min="(" + after if after else "-", max=before,
                                                count=count))
        return [(stream_id.decode(), fields[b"r"]) for stream_id, fields in rows]

    def commit(self, holder: str, expected: str, digest: str, number: int, last: str, minid: str) -> int:
        """Record the manifest line `digest` (number `number`, archiving up to stream id `last`) and trim every record
        before `minid` ("" trims nothing), if `holder` holds the lease and Redis's manifest line is `expected` (or
        already `digest`: a retry). Returns how many records were trimmed; ArchiveConflict otherwise."""
        try:
            return int(self._commit(keys=[self._stream, self._state, self._lease_key],
                                    args=[holder, expected, digest, number, last, minid]))
        except ResponseError as exc:
            if str(exc).startswith(("NOTLEASE", "STALEARCHIVE")):
                raise ArchiveConflict(str(exc)) from None
            raise

    def extent(self) -> tuple[int, str]:
        """(how many records the stream holds, the last one's stream id, "" when empty)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.xlen(self._stream)
        pipe.xrevrange(self._stream, count=1)
        length, last = cast(tuple[int, Entries], tuple(pipe.execute()))
        return int(length), last[0][0].decode() if last else ""


def archive_committed(redis: Redis, shard: str = names.AUDIT_TAG) -> tuple[str, int, str]:
    """(the digest of the shard's archive manifest line Redis last committed, "" before any; its number; the last
    stream id archived, "" before any)."""
    digest, number, last = cast(list[bytes | None], redis.hmget(names.audit_archive(shard), ["manifest", "n", "last"]))
    return (text(digest) if digest else ""), int(number or 0), (text(last) if last else "")
