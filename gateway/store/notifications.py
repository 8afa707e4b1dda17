"""NotificationOutbox: the durable queue of events a TPP must be told about, on one Redis Stream and one group.

Callers: `consents.notify.outbox_notifier` (`enqueue`, sync: the CLI, Authlib's threads, `run_in_threadpool`),
`consents.notify.Notifier` (everything else, async: one per worker process).

How an entry travels (Redis Streams, consumer group `notifiers`):

- `enqueue` XADDs it, never trimming. The group is created at id 0, so entries added before any worker ever ran
  are still delivered: the outbox survives restarts with the AOF.
- `read_new` (XREADGROUP `>`) hands each new entry to exactly one worker: its delivery count is then 1.
- After a failed attempt the worker `park`s the entry: XCLAIM JUSTID to the pseudo-consumer `parked`. That moves
  it off the worker, resets its idle time (the backoff runs from the failure) and leaves the delivery count alone.
- `claim_due` scans the pending entries (XPENDING with IDLE, which also gives each entry's delivery count) and
  XCLAIMs the ones that are due, with the entry's own wait as XCLAIM's min-idle-time, so of two workers racing
  for an entry exactly one gets it (the winner's claim resets the idle time the loser's claim checks). Each claim
  adds one to the delivery count, so the count is the number of the attempt about to be made.
  - a parked entry is due once it has waited the backoff of the attempt that failed;
  - an entry still held by a worker is due only after `lease_ms`: longer than an attempt can last, so an
    attempt in flight is never taken over, and an entry whose worker died is picked up again.
- `ack` (XACK) ends it: delivered, refused, or given up.
- `trim` (XTRIM MINID) removes only what every consumer is done with: the entries before the oldest one still
  pending and not after the last one handed out. An entry not yet delivered, or waiting for another attempt, is
  never trimmed, however many there are; the stream holds what is in flight (bounded by the retry schedule) plus
  what has not been read yet.

XAUTOCLAIM is not used: it has one min-idle-time for the whole scan, while each entry's wait depends on its own
attempt number (and on whether it is parked or held), and it does not report delivery counts.

Delivery is at least once: a worker that dies after the TPP answered but before the XACK causes one more
delivery of the same SET (same `jti`, which RFC 8417 §2.2 makes the SET's unique id, so the TPP can drop it).
"""
from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from gateway.store.names import NOTIFY_GROUP, NOTIFY_OUTBOX, NOTIFY_PARKED
from gateway.store.redis import ResponseError

__all__ = ["NOTIFY_GROUP", "NOTIFY_OUTBOX", "NOTIFY_PARKED", "NotificationOutbox", "enqueue"]
FIELD = b"event"                  # the one stream field: the event as JSON
REQUIRED = ("client_id", "consent_id", "type", "occurred_at")


def enqueue(redis_sync: Redis, event: dict[str, Any]) -> str:
    """Add one event (JSON) to the outbox; returns its stream id. Sync: callers are threads and the CLI.

    `event` carries at least client_id, consent_id, type and occurred_at (ISO 8601); what else the notifier
    needs rides along (ids only: see `consents.notify.revocation_entry`). ValueError, before anything is
    written, if one is missing.
    """
    missing = [name for name in REQUIRED if not event.get(name)]
    if missing:
        raise ValueError(f"notification event without {', '.join(missing)}")
    return _text(redis_sync.xadd(NOTIFY_OUTBOX, {FIELD: orjson.dumps(event)}))


def consumer_name() -> str:
    """This process's consumer in the group: host, pid and a random part (a restarted pid is a new consumer)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    event: dict[str, Any] | None  # None: the stored payload is not a JSON object (the notifier records and drops it)
    attempt: int                  # the delivery count: 1 for the first attempt, n for the n-th


class NotificationOutbox:
    """The async side, for one consumer (one worker process)."""

    def __init__(self, redis: AsyncRedis, consumer: str | None = None) -> None:
        self._redis = redis
        self.consumer = consumer or consumer_name()
        self._cursor = "-"   # where the next `claim_due` scan of the pending entries starts

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if missing. At id 0: entries enqueued before it existed count."""
        try:
            await self._redis.xgroup_create(NOTIFY_OUTBOX, NOTIFY_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    async def read_new(self, count: int, block_ms: int | None) -> list[Entry]:
        """Up to `count` entries never delivered to anyone, waiting up to `block_ms` (None: do not wait).

        `block_ms` must stay below the client's socket timeout, or the wait reads as a dead connection.
        """
        answer = await self._redis.xreadgroup(NOTIFY_GROUP, self.consumer, {NOTIFY_OUTBOX: ">"}, count=count,
                                              block=block_ms)
        streams: Iterable[Sequence[Any] | None] = (
            answer.values() if isinstance(answer, dict) else (rows for _, rows in answer or ()))
        return [_entry(entry_id, fields, 1) for rows in streams for entry_id, fields in (rows or ())
                if fields is not None]

    async def claim_due(self, backoff_ms: Callable[[int], int], lease_ms: int, limit: int,
                        scan: int = 256) -> list[Entry]:
        """Up to `limit` pending entries whose wait is over, now held by this consumer.

        `backoff_ms(n)` is how long a parked entry waits after its n-th attempt failed; an entry a worker holds
        waits `lease_ms`. One call scans up to `scan` pending entries; the next call continues after the last
        one it looked at, so a long list of entries still waiting does not hide the due ones behind it.
        """
        floor = min(backoff_ms(1), lease_ms)
        rows = await self._redis.xpending_range(NOTIFY_OUTBOX, NOTIFY_GROUP, min=self._cursor, max="+",
                                                count=scan, idle=max(int(floor), 0))
        due: list[tuple[str, int, int]] = []
        looked = 0
        for row in rows:
            if len(due) == limit:
                break
            looked += 1
            attempts = int(row["times_delivered"])
            wait = backoff_ms(attempts) if _text(row["consumer"]) == NOTIFY_PARKED else lease_ms
            if int(row["time_since_delivered"]) >= wait:
                due.append((_text(row["message_id"]), max(int(wait), 0), attempts))
        # The next scan goes on after the last row looked at, or starts over once this one reached the end.
        more = looked < len(rows) or len(rows) == scan
        self._cursor = "(" + _text(rows[looked - 1]["message_id"]) if more and looked else "-"
        if not due:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for entry_id, wait, _ in due:
            pipe.xclaim(NOTIFY_OUTBOX, NOTIFY_GROUP, self.consumer, wait, [entry_id])
        claimed = await pipe.execute()
        # Each XCLAIM either took the entry (adding one to its count) or found it taken, parked again or trimmed.
        return [_entry(entry_id, fields, attempts + 1)
                for (_, _, attempts), answer in zip(due, claimed, strict=True)
                for entry_id, fields in (answer or ()) if fields is not None]

    async def park(self, entry_id: str) -> None:
        """After a failed attempt: the entry waits for its next one, held by nobody (see the module docstring)."""
        await self._redis.xclaim(NOTIFY_OUTBOX, NOTIFY_GROUP, NOTIFY_PARKED, 0, [entry_id], justid=True)

    async def ack(self, entry_id: str) -> None:
        await self._redis.xack(NOTIFY_OUTBOX, NOTIFY_GROUP, entry_id)

    async def trim(self) -> int:
        """Remove the entries the group is done with (acknowledged: delivered, refused or given up); how many.

        The group's last-delivered id and the oldest pending id are read together (MULTI): every entry before both
        is acknowledged. Entries only ever move forward from there (new ones come after the last-delivered id, a
        claim only moves an entry that is already pending), so trimming below that point can drop nothing in flight.
        """
        pipe = self._redis.pipeline(transaction=True)
        pipe.xinfo_groups(NOTIFY_OUTBOX)
        pipe.xpending(NOTIFY_OUTBOX, NOTIFY_GROUP)
        groups, pending = await pipe.execute()
        group = next((g for g in groups if _text(g["name"]) == NOTIFY_GROUP), None)
        if group is None:
            return 0
        keep_from = _after(_text(group["last-delivered-id"]))
        if pending["pending"]:
            keep_from = min(keep_from, _text(pending["min"]), key=_id_order)
        return int(await self._redis.xtrim(NOTIFY_OUTBOX, minid=keep_from, approximate=False))

    async def pending(self) -> int:
        """How many entries are delivered but not acknowledged (held or parked): for tests and /metrics."""
        summary = await self._redis.xpending(NOTIFY_OUTBOX, NOTIFY_GROUP)
        return int(summary["pending"])

    async def retire(self) -> None:
        """At shutdown: remove this consumer from the group if it holds nothing (DELCONSUMER would drop what
        it holds), so restarts do not pile up dead consumers."""
        held = await self._redis.xpending_range(NOTIFY_OUTBOX, NOTIFY_GROUP, min="-", max="+", count=1,
                                                consumername=self.consumer)
        if not held:
            await self._redis.xgroup_delconsumer(NOTIFY_OUTBOX, NOTIFY_GROUP, self.consumer)


def _entry(entry_id: bytes | str, fields: Mapping[bytes | str, bytes | str], attempt: int) -> Entry:
    raw = fields.get(FIELD, fields.get(FIELD.decode()))
    try:
        event = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        event = None
    return Entry(_text(entry_id), event if isinstance(event, dict) else None, attempt)


def _id_order(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _after(entry_id: str) -> str:
    """The stream id right after `entry_id` (XTRIM MINID keeps ids from the one given)."""
    milliseconds, sequence = _id_order(entry_id)
    return f"{milliseconds}-{sequence + 1}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
