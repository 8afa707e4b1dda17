"""The bank's payment status changes read by the gateway (events/bank_feed.py) from a real sandbox bank process into
a real Redis: each change under a consent the gateway knows becomes the TPP's resource-update of the payment, the
cursor moves on, a change read again is one event, a change under an unknown consent is skipped, and a restarted
bank (another epoch) is read from its first change."""
from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from gateway.consents.notify import RESOURCE_UPDATE, claims_of
from gateway.events.bank_feed import PaymentStatusFeed
from gateway.store import names
from gateway.store.events import EventStore
from gateway.store.redis import async_client

pytestmark = pytest.mark.timeout(60)
PISP = "/open-banking/v3.1/pisp"
CREDITOR = {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "08080021325698", "Name": "ACME Ltd"}
API = "https://obgw.test:8443"


def _pay(payments_url: str, consent_id: str) -> str:
    initiation = {"InstructionIdentification": secrets.token_hex(4), "EndToEndIdentification": secrets.token_hex(4),
                  "InstructedAmount": {"Amount": "1.00", "Currency": "GBP"}, "CreditorAccount": CREDITOR}
    made = httpx.post(f"{payments_url}{PISP}/domestic-payments",
                      headers={"x-bank-customer-id": "alice", "x-bank-debtor-account-id": "acc-alice-current"},
                      json={"Data": {"ConsentId": consent_id, "Initiation": initiation}, "Risk": {}})
    assert made.status_code == 201, made.text
    return made.json()["Data"]["DomesticPaymentId"]


def _read(redis_url: str, payments_url: str, *rounds: str):
    """Run the feed's `read_once` for each round ("read"), or reset its cursor to another epoch ("restart"); the
    TPP's kept events and the cursor after."""
    async def main():
        client = async_client(redis_url)
        store = EventStore(client)
        feed = PaymentStatusFeed(store, payments_url)
        await store.take_feed_lease("this-test", 60_000)  # the feed's own loop never reads: only these rounds
        await feed.start()
        try:
            for what in rounds:
                if what == "restart":
                    await store.advance_feed("an-earlier-bank", 999)
                while await feed.read_once():
                    pass
            return (await store.poll("tpp-demo", 100)).handed_out, await store.feed_cursor()
        finally:
            await feed.close()
            await client.aclose()
    return asyncio.run(main())


def test_a_payment_under_a_known_consent_becomes_its_tpps_resource_update(redis_url, redis_client, bank):
    payments_url = bank[1]
    redis_client.set(names.consent_owner("pdc-known"), "tpp-demo")
    unknown = _pay(payments_url, "pdc-unknown-to-the-gateway")
    paid = _pay(payments_url, "pdc-known")
    kept, (epoch, seq) = _read(redis_url, payments_url, "read")
    [(jti, facts)] = kept
    claims = claims_of(facts, API, API)
    assert claims["sub"] == f"{API}{PISP}/domestic-payments/{paid}" and list(claims["events"]) == [RESOURCE_UPDATE]
    assert (facts["client_id"], facts["consent_id"]) == ("tpp-demo", "pdc-known")
    assert unknown not in repr(kept)
    assert epoch and seq >= 2

    # Read again from scratch (another epoch in the cursor): the same changes are the same events, kept once.
    again, (epoch_again, seq_again) = _read(redis_url, payments_url, "restart", "read")
    assert [j for j, _ in again] == [jti] and (epoch_again, seq_again) == (epoch, seq)


def test_only_the_lease_holder_reads_and_nothing_is_read_twice(redis_url, redis_client, bank):
    payments_url = bank[1]
    redis_client.set(names.consent_owner("pdc-lease"), "tpp-demo")

    async def main():
        client = async_client(redis_url)
        store = EventStore(client)
        feeds = [PaymentStatusFeed(store, payments_url, interval_s=0.05, lease_s=0.5) for _ in range(2)]
        for feed in feeds:
            await feed.start()
        try:
            await asyncio.to_thread(_pay, payments_url, "pdc-lease")
            for _ in range(100):
                kept = (await store.poll("tpp-demo", 100)).handed_out
                if kept:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            return (await store.poll("tpp-demo", 100)).handed_out, await client.get(names.EVENT_FEED_LEASE)
        finally:
            for feed in feeds:
                await feed.close()
            await client.aclose()
    kept, holder = asyncio.run(main())
    assert len(kept) == 1 and holder is not None
