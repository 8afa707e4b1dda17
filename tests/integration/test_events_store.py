"""The events kept for TPPs (store/events.py, events_keep.lua, events_poll.lua, event_subscription.lua) against a real
Redis: what is kept and pushed by the subscription's rules, once per jti; polling with ack and setErrs; expiry and
the bound; one subscription per TPP; one TPP's events never another's; the bank feed's lease."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import orjson
import pytest

from gateway.consents.notify import CONSENT_REVOKED, RESOURCE_UPDATE, resource_entry
from gateway.store import events as events_module
from gateway.store import names
from gateway.store.events import EventStore, Publisher, Subscription
from gateway.store.notifications import NotificationOutbox
from gateway.store.redis import async_client, sync_script

pytestmark = pytest.mark.timeout(30)
WHEN = datetime(2026, 11, 23, 10, 5, tzinfo=timezone.utc)


def _entry(client_id: str = "tpp-demo", event_type: str = RESOURCE_UPDATE, jti: str | None = None) -> dict:
    entry = resource_entry(client_id, "pdc-1", f"dp-{uuid.uuid4().hex[:8]}", "domestic-payment",
                           "/open-banking/v3.1/pisp/domestic-payments/dp-1", WHEN, jti=jti)
    return entry | {"type": event_type}


def _run(redis_url: str, scenario):
    async def main():
        client = async_client(redis_url)
        try:
            return await scenario(EventStore(client), client)
        finally:
            await client.aclose()
    return asyncio.run(main())


def _outbox_length(redis_client) -> int:
    return redis_client.xlen("obgw:{notify}:outbox")


def test_an_event_is_kept_for_polling_and_pushed_as_the_subscription_says(redis_url, redis_client):
    publish = Publisher(redis_client)
    # No subscription: kept; pushed only where the registered URL takes it (a revocation: `fallback`).
    assert publish(_entry()) is None
    assert publish(_entry(event_type=CONSENT_REVOKED), fallback=True) is not None
    assert _outbox_length(redis_client) == 1

    async def subscribe(store, _):
        await store.create("tpp-demo", Subscription("es-1", "3.1", "https://tpp.example/cb", (RESOURCE_UPDATE,)))
    _run(redis_url, subscribe)
    assert publish(_entry()) is not None                                       # a CallbackUrl: pushed
    assert publish(_entry(event_type=CONSENT_REVOKED), fallback=True) is None  # a type left out: not even kept
    assert _outbox_length(redis_client) == 2

    async def kept(store, _):
        return len((await store.poll("tpp-demo", 100)).handed_out)
    assert _run(redis_url, kept) == 3


def test_an_event_is_kept_and_pushed_once_however_often_it_is_published(redis_url, redis_client):
    entry = _entry(event_type=CONSENT_REVOKED)
    publish = Publisher(redis_client)
    assert publish(entry, fallback=True) is not None
    assert publish(dict(entry), fallback=True) is None

    async def scenario(store, _):
        assert await store.apublish(dict(entry), fallback=True) is None
        return await store.poll("tpp-demo", 100)
    polled = _run(redis_url, scenario)
    assert [jti for jti, _ in polled.handed_out] == [entry["jti"]] and _outbox_length(redis_client) == 1


def test_polling_acknowledges_reports_and_hands_out_the_oldest_first(redis_url, redis_client):
    publish = Publisher(redis_client)
    entries = [_entry() for _ in range(5)]
    for entry in entries:
        publish(entry)
    jtis = [entry["jti"] for entry in entries]

    async def scenario(store, _):
        first = await store.poll("tpp-demo", 2)
        assert [jti for jti, _ in first.handed_out] == jtis[:2] and first.remaining == 5
        again = await store.poll("tpp-demo", 2)  # handed out, not acknowledged: handed out again
        assert [jti for jti, _ in again.handed_out] == jtis[:2]
        after = await store.poll("tpp-demo", 2, acknowledged=[jtis[0], "no-such-jti"], reported=[jtis[1]])
        assert [facts["jti"] for facts in after.acknowledged] == [jtis[0]]
        assert [facts["jti"] for facts in after.reported] == [jtis[1]]
        assert [jti for jti, _ in after.handed_out] == jtis[1:3] and after.remaining == 4
        only_ack = await store.poll("tpp-demo", 0, acknowledged=jtis[1:])
        assert (only_ack.handed_out, only_ack.remaining) == ([], 0)
        assert dict((await store.poll("tpp-demo", 1)).handed_out) == {}
    _run(redis_url, scenario)


def test_one_tpps_events_and_acknowledgements_never_reach_another(redis_url, redis_client):
    mine = _entry("tpp-demo")
    Publisher(redis_client)(mine)

    async def scenario(store, _):
        theirs = await store.poll("tpp-other", 100, acknowledged=[mine["jti"]])
        assert (theirs.handed_out, theirs.acknowledged, theirs.remaining) == ([], [], 0)
        assert [jti for jti, _ in (await store.poll("tpp-demo", 100)).handed_out] == [mine["jti"]]
    _run(redis_url, scenario)


def test_events_expire_and_a_tpp_holds_a_bounded_number(redis_url, redis_client, monkeypatch):
    publish = Publisher(redis_client)
    monkeypatch.setattr(events_module, "MAX_KEPT", 3)
    entries = [_entry() for _ in range(5)]
    for entry in entries:
        publish(entry)

    async def kept(store, _):
        return [jti for jti, _ in (await store.poll("tpp-demo", 100)).handed_out]
    assert _run(redis_url, kept) == [entry["jti"] for entry in entries[2:]]  # the oldest let go
    assert 0 < redis_client.pttl("obgw:{tpp-demo}:events") <= 7 * 86_400_000

    monkeypatch.setattr(events_module, "KEEP_SECONDS", 1)
    publish(_entry())
    asyncio.run(asyncio.sleep(1.1))
    assert _run(redis_url, kept) == []
    assert redis_client.exists("obgw:{tpp-demo}:events", "obgw:{tpp-demo}:event-queue") == 0


def test_a_tpp_has_one_subscription_changed_only_under_its_id(redis_url):
    async def scenario(store, _):
        first = Subscription("es-1", "3.1", None, ())
        assert await store.create("tpp-demo", first)
        assert not await store.create("tpp-demo", Subscription("es-2", "3.1"))
        assert await store.subscription("tpp-demo") == first
        changed = Subscription("es-1", "v3.1", "https://tpp.example/cb", (CONSENT_REVOKED,))
        assert not await store.replace("tpp-demo", Subscription("es-2", "3.1"))
        assert not await store.replace("tpp-other", changed)
        assert await store.replace("tpp-demo", changed)
        assert await store.subscription("tpp-demo") == changed
        assert changed.wants(CONSENT_REVOKED) and not changed.wants(RESOURCE_UPDATE)
        assert not await store.delete("tpp-other", "es-1")
        assert await store.delete("tpp-demo", "es-1")
        assert await store.subscription("tpp-demo") is None
        assert not await store.delete("tpp-demo", "es-1")
    _run(redis_url, scenario)


def test_one_worker_reads_the_bank_feed_until_its_lease_lapses(redis_url):
    async def scenario(store, _):
        assert await store.take_feed_lease("worker-a", 300)
        assert await store.take_feed_lease("worker-a", 300)  # renewed
        assert not await store.take_feed_lease("worker-b", 300)
        await asyncio.sleep(0.4)
        assert await store.take_feed_lease("worker-b", 300)
        assert await store.feed_cursor() == (None, 0)
        await store.advance_feed("epoch-1", 7)
        await store.advance_feed("epoch-1", 5)  # a reader that lost its lease cannot move it back
        assert await store.feed_cursor() == ("epoch-1", 7)
        await store.advance_feed("epoch-2", 0)  # another bank process: from its first change
        assert await store.feed_cursor() == ("epoch-2", 0)
    _run(redis_url, scenario)


def test_the_outbox_entry_of_a_push_is_the_kept_event(redis_url, redis_client):
    entry = _entry(event_type=CONSENT_REVOKED)
    Publisher(redis_client)(entry, fallback=True)

    async def scenario(store, client):
        outbox = NotificationOutbox(client)
        await outbox.ensure_group()
        [new] = await outbox.read_new(10, None)
        [(jti, facts)] = (await store.poll("tpp-demo", 10)).handed_out
        return new.event, jti, facts
    pushed, jti, kept = _run(redis_url, scenario)
    assert pushed == kept == entry and jti == entry["jti"]


def test_events_kept_in_the_same_millisecond_are_handed_out_in_the_order_kept(redis_url, redis_client):
    keep = sync_script(redis_client, "events_keep")
    entries = [_entry() for _ in range(30)]
    pipe = redis_client.pipeline(transaction=False)  # all sent at once: most land in one millisecond
    for entry in entries:
        keep(keys=[names.events("tpp-demo"), names.event_queue("tpp-demo"), names.event_subscription("tpp-demo")],
             args=[entry["jti"], orjson.dumps(entry), entry["type"], 60_000, 100], client=pipe)
    pipe.execute()

    async def kept(store, _):
        return [jti for jti, _ in (await store.poll("tpp-demo", 100)).handed_out]
    assert _run(redis_url, kept) == [entry["jti"] for entry in entries]
