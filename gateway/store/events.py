"""Events kept for TPPs (UK OB Event Notification and Events APIs v3.1.11): per TPP, its events for aggregated
polling and its one event subscription; and where the gateway is in the bank's feed of payment status changes.

Callers: `consents.notify` (`Publisher`, sync: revocations from the CLI, the dashboard's and Authlib's threads, and
authorisations), `consents.notify.Notifier` (`EventStore.subscription`), `events.api` (subscriptions, polling),
`events.bank_feed` (`EventStore.apublish`, the feed's cursor and lease).

An event is kept as its facts (ids, times, its `jti`; see `consents.notify`), never as a signed token: it is signed
each time it is handed out, with the key the TPP can verify then (keys rotate far sooner than events expire).

- Publishing keeps the event in the TPP's store (`events_keep.lua`: one round trip, on the TPP's hash tag) - unless
  its subscription names event types and not this one - and, for a push, adds it to the notification outbox
  (`store.notifications`). An event is kept once per `jti`: a repeat (a feed read again after a crash) is neither
  kept nor pushed again. A push is wanted when the subscription names a CallbackUrl, or (`fallback`) for the events
  the TPP's registered notification URL takes without a subscription (revocations, as before subscriptions).
- An event stays until the TPP acknowledges it or `KEEP_SECONDS` pass; a TPP holds at most `MAX_KEPT` (the oldest
  go first, logged). The keys expire with their last event, so a TPP that never polls leaves nothing behind.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis

from gateway.store import names
from gateway.store.notifications import FIELD, enqueue
from gateway.store.redis import WorkerRedis, async_script, sync_script, text

__all__ = ["KEEP_SECONDS", "MAX_KEPT", "EventStore", "Polled", "Publisher", "Subscription"]

log = logging.getLogger("obgw.events")
KEEP_SECONDS = 7 * 86_400  # how long an unacknowledged event is kept for polling
MAX_KEPT = 10_000          # events one TPP may have waiting


@dataclass(frozen=True, slots=True)
class Subscription:
    """A TPP's event subscription (OBEventSubscriptionResponse1's Data): `event_types` empty means every type."""
    subscription_id: str
    version: str
    callback_url: str | None = None
    event_types: tuple[str, ...] = ()

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types

    def fields(self) -> list[str]:
        return ["version", self.version, "callback_url", self.callback_url or "",
                "event_types", orjson.dumps(list(self.event_types)).decode() if self.event_types else ""]


@dataclass(frozen=True, slots=True)
class Polled:
    """What one poll did: the facts of the events acknowledged and reported in error (of those still kept), the
    events handed out (jti, facts), and how many are kept in all after it (the handed-out ones included)."""
    acknowledged: list[dict[str, Any]]
    reported: list[dict[str, Any]]
    handed_out: list[tuple[str, dict[str, Any]]]
    remaining: int


def _keep_args(entry: dict[str, Any]) -> tuple[list[str], list[str | bytes | int]]:
    client_id = entry["client_id"]
    return ([names.events(client_id), names.event_queue(client_id), names.event_subscription(client_id)],
            [entry["jti"], orjson.dumps(entry), entry["type"], KEEP_SECONDS * 1000, MAX_KEPT])


def _pushed(entry: dict[str, Any], answer: Sequence[Any], fallback: bool) -> bool:
    kept, callback, dropped = (int(value) for value in answer)
    if dropped:
        log.warning("events: %s had %d events waiting; the %d oldest were let go", entry["client_id"], MAX_KEPT,
                    dropped)
    return kept == 1 and (callback == 1 or fallback)


class Publisher:
    """The sync side: `publish(entry, fallback=...)` from threads and the CLI."""

    def __init__(self, redis_sync: Redis) -> None:
        self._redis = redis_sync
        self._keep = sync_script(redis_sync, "events_keep")

    def __call__(self, entry: dict[str, Any], *, fallback: bool = False) -> str | None:
        """Keep `entry` for the TPP's polling and, for a push, put it in the outbox; the outbox stream id, or None
        when nothing is to be pushed."""
        keys, args = _keep_args(entry)
        answer = self._keep(keys=keys, args=args)
        return enqueue(self._redis, entry) if _pushed(entry, answer, fallback) else None


def _subscription(stored: Mapping[bytes | str, bytes | str]) -> Subscription | None:
    raw = {text(name): text(value) for name, value in stored.items()}
    if "id" not in raw:
        return None
    types = raw.get("event_types") or ""
    return Subscription(raw["id"], raw.get("version", ""), raw.get("callback_url") or None,
                        tuple(orjson.loads(types)) if types else ())


class EventStore:
    """The async side, on the worker's client."""

    def __init__(self, redis: WorkerRedis) -> None:
        self._redis = redis
        self._keep = async_script(redis, "events_keep")
        self._poll = async_script(redis, "events_poll")
        self._change = async_script(redis, "event_subscription")
        self._lease = async_script(redis, "event_feed_lease")
        self._advance = async_script(redis, "event_feed_advance")

    async def apublish(self, entry: dict[str, Any], *, fallback: bool = False) -> str | None:
        """`publish` on the worker's client (the bank feed)."""
        keys, args = _keep_args(entry)
        if not _pushed(entry, await self._keep(keys, args), fallback):
            return None
        return text(await self._redis.xadd(names.NOTIFY_OUTBOX, {FIELD: orjson.dumps(entry)}))

    # -- the subscription -------------------------------------------------------------------------------------------

    async def subscription(self, client_id: str) -> Subscription | None:
        return _subscription(await self._redis.hgetall(names.event_subscription(client_id)))

    async def create(self, client_id: str, subscription: Subscription) -> bool:
        """Store the TPP's subscription; False if it has one already (nothing changed)."""
        return await self._changed("create", client_id, subscription.subscription_id, subscription.fields())

    async def replace(self, client_id: str, subscription: Subscription) -> bool:
        """Replace the TPP's subscription of this id; False if it has none of this id."""
        return await self._changed("replace", client_id, subscription.subscription_id, subscription.fields())

    async def delete(self, client_id: str, subscription_id: str) -> bool:
        return await self._changed("delete", client_id, subscription_id, [])

    async def _changed(self, what: str, client_id: str, subscription_id: str, fields: list[str]) -> bool:
        return int(await self._change([names.event_subscription(client_id)], [what, subscription_id, *fields])) == 1

    # -- polling ----------------------------------------------------------------------------------------------------

    async def poll(self, client_id: str, most: int, acknowledged: Sequence[str] = (),
                   reported: Sequence[str] = ()) -> Polled:
        """Drop the acknowledged events, then hand out up to `most` of the oldest (they stay until acknowledged)."""
        answer = await self._poll([names.events(client_id), names.event_queue(client_id)],
                                  [KEEP_SECONDS * 1000, most, len(acknowledged), *acknowledged, *reported])
        acked, errs, flat, remaining = answer
        pairs = [(text(flat[i]), orjson.loads(flat[i + 1])) for i in range(0, len(flat), 2)]
        return Polled([orjson.loads(raw) for raw in acked], [orjson.loads(raw) for raw in errs], pairs,
                      int(remaining))

    # -- the bank's feed of payment status changes ------------------------------------------------------------------

    async def take_feed_lease(self, worker: str, lease_ms: int) -> bool:
        """True if `worker` holds the lease (taken now, or renewed) for `lease_ms`."""
        return int(await self._lease([names.EVENT_FEED_LEASE], [worker, lease_ms])) == 1

    async def feed_cursor(self) -> tuple[str | None, int]:
        """(the bank's epoch, the last change read in it), (None, 0) before the first."""
        epoch, seq = await self._redis.hmget(names.EVENT_FEED, ["epoch", "seq"])
        return (text(epoch) if epoch else None), int(seq or 0)

    async def advance_feed(self, epoch: str, seq: int) -> None:
        """The cursor at (epoch, seq): forward only within an epoch, anywhere in another (a restarted bank)."""
        await self._advance([names.EVENT_FEED], [epoch, seq])

    async def consent_owner(self, consent_id: str) -> str | None:
        """The TPP whose consent this is (the consent store's owner index), or None if the gateway has no such one."""
        raw = await self._redis.get(names.consent_owner(consent_id))
        return text(raw) if raw else None
