"""The notification outbox keeps every entry not yet delivered or given up on, however many, and lets go of the ones
the group is done with (store/notifications.py `trim`, run by the Notifier)."""
from __future__ import annotations

import asyncio

import pytest
from support.receiver import Receiver

from gateway.consents.model import Consent, Kind, Status
from gateway.consents.notify import Notifier, outbox_notifier
from gateway.store.names import NOTIFY_GROUP, NOTIFY_OUTBOX
from gateway.store.notifications import NotificationOutbox, enqueue
from gateway.store.redis import async_client

pytestmark = pytest.mark.timeout(60)
EVENT = {"client_id": "tpp-demo", "consent_id": "aac-1", "type": "t", "occurred_at": "2026-11-23T10:00:00+00:00"}


def _outbox_run(redis_url: str, body):
    async def go():
        client = async_client(redis_url)
        try:
            outbox = NotificationOutbox(client, "worker-1")
            await outbox.ensure_group()
            return await body(outbox, client)
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_more_entries_than_the_old_trim_bound_are_all_kept_until_delivered(redis_client, redis_url):
    # The outbox once trimmed at XADD (MAXLEN ~ 100,000): a backlog that size lost its oldest, undelivered entries.
    backlog = 100_500

    async def create_group(_, __):
        return None
    _outbox_run(redis_url, create_group)  # the group exists, as once any worker has run
    pipe = redis_client.pipeline(transaction=False)
    for _ in range(backlog):
        enqueue(pipe, EVENT)  # enqueue's own XADD, sent in one round trip
    pipe.execute()

    async def body(outbox, client):
        trimmed = await outbox.trim()
        first = await outbox.read_new(1, None)
        return trimmed, first, await client.xlen(NOTIFY_OUTBOX)
    trimmed, first, length = _outbox_run(redis_url, body)
    assert trimmed == 0 and length == backlog
    group = redis_client.xinfo_groups(NOTIFY_OUTBOX)[0]
    assert group["lag"] == backlog - 1  # the first one is now handed out; every other is still to deliver
    assert first[0].entry_id == redis_client.xrange(NOTIFY_OUTBOX, count=1)[0][0].decode()


def test_trim_removes_only_entries_before_the_oldest_pending_one(redis_client, redis_url):
    ids = [enqueue(redis_client, EVENT) for _ in range(10)]

    async def body(outbox, client):
        held = await outbox.read_new(4, None)              # ids[0..3] pending, ids[4..9] not yet delivered
        await outbox.ack(held[1].entry_id)
        await outbox.ack(held[2].entry_id)
        steps = [await outbox.trim()]                       # ids[0] still pending: nothing may go
        await outbox.park(held[0].entry_id)                 # waiting for its next attempt: still kept
        steps.append(await outbox.trim())
        await outbox.ack(held[0].entry_id)
        steps.append(await outbox.trim())                   # ids[0..2] done: they go; ids[3] pending stays
        remaining = [e.decode() for e, _ in await client.xrange(NOTIFY_OUTBOX)]
        await outbox.ack(held[3].entry_id)
        steps.append(await outbox.trim())
        return steps, remaining, [e.decode() for e, _ in await client.xrange(NOTIFY_OUTBOX)]
    steps, remaining, finally_left = _outbox_run(redis_url, body)
    assert steps == [0, 0, 3, 1]
    assert remaining == ids[3:]
    assert finally_left == ids[4:]  # never delivered: kept
    assert redis_client.xpending(NOTIFY_OUTBOX, NOTIFY_GROUP)["pending"] == 0


def test_a_notifier_trims_what_it_has_delivered(redis_url, redis_client):
    async def sink(record) -> None:
        """The audit sink (not looked at here)."""

    async def scenario():
        async with Receiver() as tpp:
            async def url_of(_):
                return tpp.url
            client = async_client(redis_url)
            notifier = Notifier(client, url_of, lambda claims: "header.claims.signature", sink,
                                issuer="https://obgw.test", api_base="https://obgw.test", backoff_seconds=(0.05,),
                                timeout_s=1.0, lease_s=3.0, poll_s=0.05, trim_s=0.1)
            await notifier.start()
            try:
                for _ in range(5):
                    await asyncio.to_thread(outbox_notifier(redis_client), _consent())
                deadline = asyncio.get_running_loop().time() + 10
                while await client.xlen(NOTIFY_OUTBOX) and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.05)
                return await client.xlen(NOTIFY_OUTBOX), len(tpp.requests)
            finally:
                await notifier.close()
                await client.aclose()
    assert asyncio.run(scenario()) == (0, 5)  # all five delivered, then gone from the stream


def _consent() -> Consent:
    return Consent(consent_id="aac-1", client_id="tpp-demo", kind=Kind.ACCOUNT_ACCESS, status=Status.REVOKED,
                   created="2026-11-23T10:00:00+00:00", status_updated="2026-11-23T10:05:00+00:00",
                   permissions=("ReadAccountsBasic",), expires=None, transaction_from=None, transaction_to=None,
                   customer_id="cust-1", accounts=("22289",))
