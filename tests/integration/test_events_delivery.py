"""Real-time delivery to a subscription's CallbackUrl (consents/notify.py's Notifier with the events' subscriptions)
against a real Redis and a loopback TPP endpoint: where each event goes (the subscription's CallbackUrl, else a
revocation to the registered notification URL), what is not sent (a type left out, nowhere to send it, a callback the
SSRF rules refuse at delivery), and that the pushed SET and the polled one are the same event."""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timezone

import jwt
import pytest
from support.receiver import Receiver

from gateway.consents.model import Consent, Kind, Status
from gateway.consents.notify import (
    CONSENT_REVOKED,
    RESOURCE_UPDATE,
    SET_TYPE,
    Notifier,
    authorisation_notifier,
    outbox_notifier,
    resource_entry,
)
from gateway.events.callbacks import CallbackGuard
from gateway.oauth.signing_keys import KeyEncryptionKey, KeyRing, new_key_record, signer
from gateway.store.events import EventStore, Publisher, Subscription
from gateway.store.redis import async_client, sync_client

pytestmark = pytest.mark.timeout(30)
ISSUER = "https://obgw.test"
CLIENT = "tpp-demo"
FAST = {"backoff_seconds": (0.05,), "timeout_s": 1.0, "lease_s": 3.0, "poll_s": 0.05}
KEK = KeyEncryptionKey(bytes(32))
KID, RECORD = new_key_record(KEK)
RING = KeyRing({KID: RECORD}, overlap=60, kek=KEK)
WHEN = datetime(2026, 11, 23, tzinfo=timezone.utc)


def _consent(status: Status = Status.REVOKED) -> Consent:
    return Consent(consent_id=f"aac-{uuid.uuid4()}", client_id=CLIENT, kind=Kind.ACCOUNT_ACCESS, status=status,
                   created="2026-11-23T10:00:00+00:00", status_updated="2026-11-23T10:05:00+00:00",
                   permissions=("ReadAccountsBasic",), expires=None, transaction_from=None, transaction_to=None,
                   customer_id="cust-1", accounts=("22289",))


class Sink:
    """The audit sink: keeps the records, and wakes whoever waits for them."""

    def __init__(self) -> None:
        self.records = []
        self._arrived: asyncio.Event | None = None

    async def __call__(self, record) -> None:
        self.records.append(record)
        if self._arrived is not None:
            self._arrived.set()

    async def wait(self, timeout: float = 5.0) -> None:
        """Until a record is stored."""
        self._arrived = self._arrived or asyncio.Event()
        if not self.records:
            await asyncio.wait_for(self._arrived.wait(), timeout)


@contextlib.asynccontextmanager
async def _delivering(redis_url: str, registered: str | None, sink: Sink, allow_loopback: bool = True):
    client = async_client(redis_url)
    store = EventStore(client)

    async def url_of(client_id: str) -> str | None:
        return registered if client_id == CLIENT else None

    notifier = Notifier(client, url_of, signer(lambda: RING, SET_TYPE), sink, issuer=ISSUER, api_base=ISSUER,
                        subscription_of=store.subscription, guard=CallbackGuard(allow_loopback), **FAST)
    await notifier.start()
    try:
        yield store
    finally:
        await notifier.close()
        await client.aclose()


def _sync(redis_url: str, act):
    client = sync_client(redis_url)
    try:
        return act(client)
    finally:
        client.close()


def test_an_event_goes_to_the_subscriptions_callback_and_is_the_one_polled(redis_url):
    sink, consent = Sink(), _consent()

    async def scenario():
        async with Receiver() as callback, Receiver() as registered, \
                _delivering(redis_url, registered.url, sink) as store:
            await store.create(CLIENT, Subscription("es-1", "3.1", callback.url))
            await asyncio.to_thread(_sync, redis_url, lambda c: outbox_notifier(c)(consent))
            await sink.wait()
            polled = await store.poll(CLIENT, 10)
            return callback.requests, registered.requests, polled
    pushed, elsewhere, polled = asyncio.run(scenario())
    assert elsewhere == [] and len(pushed) == 1
    claims = jwt.decode(pushed[0].body, RING.verification_key(KID), algorithms=["ES256"], audience=CLIENT)
    assert list(claims["events"]) == [CONSENT_REVOKED]
    [(jti, facts)] = polled.handed_out
    assert jti == claims["jti"] and facts["consent_id"] == consent.consent_id
    assert [(r.reason, r.route, r.consent_id) for r in sink.records] == [
        ("notify.delivered", "event-notification", consent.consent_id)]


def test_without_a_callback_a_revocation_goes_to_the_registered_url_and_an_update_is_left_for_polling(redis_url):
    sink, revoked, authorised = Sink(), _consent(), _consent(Status.AUTHORISED)

    async def scenario():
        async with Receiver() as registered, _delivering(redis_url, registered.url, sink) as store:
            await store.create(CLIENT, Subscription("es-1", "3.1"))  # polling only
            await asyncio.to_thread(_sync, redis_url, lambda c: (outbox_notifier(c)(revoked),
                                                                 authorisation_notifier(c)(authorised)))
            await sink.wait()
            await asyncio.sleep(0.3)
            return registered.requests, await store.poll(CLIENT, 10)
    requests, polled = asyncio.run(scenario())
    assert len(requests) == 1
    assert list(jwt.decode(requests[0].body, options={"verify_signature": False})["events"]) == [CONSENT_REVOKED]
    assert [r.reason for r in sink.records] == ["notify.delivered"]
    assert {facts["consent_id"] for _, facts in polled.handed_out} == {revoked.consent_id, authorised.consent_id}


def test_an_event_type_the_subscription_leaves_out_is_neither_kept_nor_sent(redis_url):
    sink = Sink()

    async def subscribe(types: tuple[str, ...], url: str) -> None:
        client = async_client(redis_url)
        try:
            store = EventStore(client)
            if not await store.replace(CLIENT, Subscription("es-1", "3.1", url, types)):
                await store.create(CLIENT, Subscription("es-1", "3.1", url, types))
        finally:
            await client.aclose()

    async def scenario():
        async with Receiver() as callback, Receiver() as registered:
            await subscribe((RESOURCE_UPDATE,), callback.url)
            assert await asyncio.to_thread(_sync, redis_url, lambda c: outbox_notifier(c)(_consent())) is None
            # In the outbox while revocations were wanted, left out by the time it is delivered.
            await subscribe((), callback.url)
            assert await asyncio.to_thread(_sync, redis_url, lambda c: outbox_notifier(c)(_consent())) is not None
            await subscribe((RESOURCE_UPDATE,), callback.url)
            async with _delivering(redis_url, registered.url, sink) as store:
                await sink.wait()
                kept = await store.poll(CLIENT, 10)
            return callback.requests + registered.requests, kept
    sent, kept = asyncio.run(scenario())
    assert sent == [] and len(kept.handed_out) == 1  # the one kept while revocations were wanted
    assert [r.reason for r in sink.records] == ["notify.not_subscribed"]


def test_a_callback_the_ssrf_rules_refuse_at_delivery_gets_nothing(redis_url):
    sink = Sink()
    entry = resource_entry(CLIENT, "pdc-1", "dp-1", "domestic-payment",
                           "/open-banking/v3.1/pisp/domestic-payments/dp-1", WHEN)

    async def scenario():
        # Subscribed while loopback was allowed; the operator has since turned it off.
        async with Receiver() as callback, _delivering(redis_url, None, sink, allow_loopback=False) as store:
            await store.create(CLIENT, Subscription("es-1", "3.1", callback.url))
            await asyncio.to_thread(_sync, redis_url, lambda c: Publisher(c)(entry))
            await sink.wait()
            return callback.requests
    assert asyncio.run(scenario()) == []
    assert [(r.reason, r.decision, r.status) for r in sink.records] == [("notify.refused", "refuse", 0)]
