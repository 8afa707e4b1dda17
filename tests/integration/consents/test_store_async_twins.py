"""The stores' async twins (`a...` methods, on the worker's async client) against a real Redis: each reads and writes
exactly what its sync namesake does, so the request path and the CLI / Authlib see one store; nothing is cached."""
from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from gateway.audit.customers import CustomerIds
from gateway.consents import lifecycle
from gateway.consents.model import Consent, Kind, Status, expires_ms, from_record, to_record
from gateway.store import names
from gateway.store.clients import ClientStore
from gateway.store.consents import ConsentStore
from gateway.store.redis import async_client

CUSTOMERS = CustomerIds(os.urandom(32))
EXPIRES = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0).isoformat()
CONSENT = Consent(consent_id="aac-1", client_id="tpp-demo", kind=Kind.ACCOUNT_ACCESS, status=Status.AUTHORISED,
                  created="2026-06-01T11:00:00+00:00", status_updated="2026-06-01T11:00:00+00:00",
                  permissions=("ReadAccountsBasic",), expires=EXPIRES, transaction_from=None, transaction_to=None,
                  customer_id="alice", accounts=("acc-1",), grant_id="grant-1")


def _run(redis_url: str, body):
    """asyncio.run(body(live)) with a fresh worker client, always closed."""
    async def go():
        live = async_client(redis_url)
        try:
            return await body(live)
        finally:
            await live.aclose()
    return asyncio.run(go())


def test_a_client_read_on_the_async_client_is_the_sync_document_and_live(redis_url, redis_client):
    ClientStore(redis_client).add({"client_id": "tpp-demo", "jwks": {"keys": []}})

    async def body(live):
        clients = ClientStore(redis_client, live=live)
        first = await clients.aget("tpp-demo")
        clients.replace({"client_id": "tpp-demo", "jwks": {"keys": [{"kid": "new"}]}, "status": "disabled"}, None)
        return first, await clients.aget("tpp-demo"), await clients.aget("tpp-none")
    first, after, missing = _run(redis_url, body)
    assert first == {"client_id": "tpp-demo", "jwks": {"keys": []}}
    assert after["jwks"] == {"keys": [{"kid": "new"}]} and after["status"] == "disabled" and missing is None


def test_acreate_stores_what_create_stores(redis_url, redis_client):
    async def body(live):
        store = ConsentStore(redis_client, CUSTOMERS, live=live)
        await store.acreate(to_record(CONSENT), expires_ms(CONSENT), lapse_seconds=3600)
        return await store.aget("tpp-demo", "aac-1"), await store.aget("tpp-demo", "aac-none")
    read, missing = _run(redis_url, body)
    assert from_record(read) == CONSENT and missing is None
    key, owner = names.consent("tpp-demo", "aac-1"), names.consent_owner("aac-1")
    made_async = redis_client.hgetall(key), redis_client.ttl(key), redis_client.get(owner), redis_client.ttl(owner)
    redis_client.flushall()
    ConsentStore(redis_client, CUSTOMERS).create(to_record(CONSENT), expires_ms(CONSENT), lapse_seconds=3600)
    made_sync = redis_client.hgetall(key), redis_client.ttl(key), redis_client.get(owner), redis_client.ttl(owner)
    # The customer id is sealed afresh each time (a random nonce): equal once opened, never stored in clear.
    unsealed = [{k: v for k, v in fields.items() if k not in (b"customer_id", b"record")}
                for fields in (made_async[0], made_sync[0])]
    assert unsealed[0] == unsealed[1] and made_async[2:3] == made_sync[2:3] == (b"tpp-demo",)
    assert b"alice" not in made_async[0][b"customer_id"] and b"alice" not in made_async[0][b"record"]
    assert 3590 < made_async[1] <= 3600 and 3590 < made_async[3] <= 3600


def test_atransition_is_the_compare_and_set_and_akeep_keeps(redis_url, redis_client):
    async def body(live):
        store = ConsentStore(redis_client, CUSTOMERS, live=live)
        await store.acreate(to_record(CONSENT), expires_ms(CONSENT), lapse_seconds=3600)
        await store.akeep("tpp-demo", "aac-1")
        consumed = to_record(replace(CONSENT, status=Status.CONSUMED))
        stored = await store.atransition(consumed, ["Authorised"], expires_ms(CONSENT))
        again = await store.atransition(consumed, ["Authorised"], expires_ms(CONSENT))
        gone = await store.atransition({**consumed, "consent_id": "aac-none"}, ["Authorised"], None)
        return stored, again, gone, await store.aget("tpp-demo", "aac-1")
    stored, again, gone, read = _run(redis_url, body)
    assert (stored, again, gone) == (None, "Consumed", "missing")
    assert read["status"] == "Consumed" and read["customer_id"] == "alice"
    assert redis_client.ttl(names.consent("tpp-demo", "aac-1")) == -1
    assert redis_client.ttl(names.consent_owner("aac-1")) == -1


def test_move_async_is_move_on_the_async_twins(redis_url, redis_client):
    async def body(live):
        store = ConsentStore(redis_client, CUSTOMERS, live=live)
        awaiting = replace(CONSENT, status=Status.AWAITING_AUTHORISATION)
        await store.acreate(to_record(awaiting), expires_ms(awaiting), lapse_seconds=3600)
        authorised = await lifecycle.move_async(store, awaiting, Status.AUTHORISED, accounts=("acc-2",))
        consumed = await lifecycle.move_async(store, authorised, Status.CONSUMED)
        conflicts = []
        for consent, target in ((authorised, Status.CONSUMED), (consumed, Status.REVOKED)):
            try:
                await lifecycle.move_async(store, consent, target)
            except lifecycle.ConsentConflict as conflict:
                conflicts.append(conflict.found)
        return consumed, conflicts, from_record(await store.aget("tpp-demo", "aac-1"))
    consumed, conflicts, read = _run(redis_url, body)
    assert read == consumed and read.status is Status.CONSUMED and read.accounts == ("acc-2",)
    assert conflicts == ["Consumed", "Consumed"]  # the stored status refused the first; the table the second
    assert redis_client.ttl(names.consent("tpp-demo", "aac-1")) == -1  # authorised: kept for good
