"""The bank's customer id in Redis (issue 14 item 5), against a real Redis: only sealed in consents, the customer's
index named by their audit pseudonym, and what an older version stored in clear still read, then sealed at start."""
from __future__ import annotations

import os

import orjson
import pytest

from gateway.audit.customers import CustomerIds
from gateway.consents import lifecycle
from gateway.consents.legacy import seal_customer_ids
from gateway.consents.model import (
    Consent,
    Kind,
    Status,
    expires_ms,
    from_record,
    to_record,
)
from gateway.store import names
from gateway.store.consents import ConsentStore, _fields

CUSTOMER = "customer-7731"
CUSTOMERS = CustomerIds(os.urandom(32))


def _consent(consent_id: str = "aac-1", status: Status = Status.AWAITING_AUTHORISATION,
             customer_id: str | None = None) -> Consent:
    return Consent(consent_id=consent_id, client_id="tpp-demo", kind=Kind.ACCOUNT_ACCESS, status=status,
                   created="2026-06-01T11:00:00+00:00", status_updated="2026-06-01T11:00:00+00:00",
                   permissions=("ReadAccountsBasic",), expires=None, transaction_from=None, transaction_to=None,
                   customer_id=customer_id, accounts=("acc-1",), grant_id="grant-1" if customer_id else None)


@pytest.fixture
def store(redis_client):
    return ConsentStore(redis_client, CUSTOMERS)


def _everything(redis_client) -> bytes:
    """Every key name and value in Redis, as one blob to search."""
    blob = []
    for key in redis_client.scan_iter(count=1000):
        blob.append(key)
        kind = redis_client.type(key)
        if kind == b"hash":
            blob += [b for pair in redis_client.hgetall(key).items() for b in pair]
        elif kind == b"set":
            blob += list(redis_client.smembers(key))
        elif kind == b"string":
            blob.append(redis_client.get(key))
    return b"\n".join(blob)


def _authorised(store: ConsentStore, consent_id: str = "aac-1") -> Consent:
    consent = _consent(consent_id)
    store.create(to_record(consent), expires_ms(consent), lapse_seconds=3600)
    store.index_for_customer(CUSTOMER, "tpp-demo", consent_id)
    return lifecycle.move(store, consent, Status.AUTHORISED, customer_id=CUSTOMER, grant_id="grant-1")


def test_an_authorised_consent_and_its_index_hold_the_customer_id_in_no_readable_form(store, redis_client):
    moved = _authorised(store)
    assert CUSTOMER.encode() not in _everything(redis_client)
    assert redis_client.exists(names.subject_consents(CUSTOMERS.pseudonym(CUSTOMER)))
    # Read with the key, the consent is as it was authorised: the dashboard finds it from the customer's id.
    assert [from_record(r) for r in store.of_customer(CUSTOMER)] == [moved]
    assert from_record(store.get("tpp-demo", "aac-1")).customer_id == CUSTOMER


def test_without_the_key_a_store_reads_the_id_sealed_and_refuses_to_name_a_customer(store, redis_client):
    _authorised(store)
    keyless = ConsentStore(redis_client)
    assert keyless.get("tpp-demo", "aac-1")["customer_id"].startswith("sealed:")
    with pytest.raises(RuntimeError, match="audit pseudonym key"):
        keyless.of_customer(CUSTOMER)
    with pytest.raises(RuntimeError, match="audit pseudonym key"):
        lifecycle.move(keyless, _consent("aac-2"), Status.AUTHORISED, customer_id=CUSTOMER)
    assert CUSTOMER.encode() not in _everything(redis_client)


def test_another_pseudonym_key_opens_no_consent(store, redis_client):
    _authorised(store)
    stranger = ConsentStore(redis_client, CustomerIds(os.urandom(32)))
    assert stranger.of_customer(CUSTOMER) == []
    with pytest.raises(Exception, match="does not open with the audit pseudonym key"):
        stranger.get("tpp-demo", "aac-1")


def _store_as_an_older_version(redis_client, consent: Consent) -> None:
    """What versions before item 5 wrote: the id in clear in the hash and record, the index named by it."""
    redis_client.hset(names.consent("tpp-demo", consent.consent_id), mapping=_fields(to_record(consent), None))
    redis_client.set(names.consent_owner(consent.consent_id), "tpp-demo")
    redis_client.sadd(names.customer_consents(CUSTOMER), f"tpp-demo {consent.consent_id}")
    redis_client.set(names.refresh_token("tpp-demo", "ab" * 32), orjson.dumps(
        {"client_id": "tpp-demo", "consent_id": consent.consent_id, "customer_id": CUSTOMER, "subject": "cust-x",
         "grant_id": "grant-1", "auth_time": 1, "exp": 2, "cnf": "t", "scope": "openid accounts"}), ex=600)
    redis_client.set(names.authorization_code("cd" * 32), orjson.dumps(
        {"client_id": "tpp-demo", "consent_id": consent.consent_id, "customer_id": CUSTOMER}), ex=60)


def test_a_consent_stored_in_clear_by_an_older_version_is_found_read_and_sealed_when_written(store, redis_client):
    legacy = _consent("aac-old", Status.AUTHORISED, customer_id=CUSTOMER)
    _store_as_an_older_version(redis_client, legacy)
    [found] = store.of_customer(CUSTOMER)
    assert from_record(found) == legacy
    # Admit gets the hash's value: in clear, it is taken as it is (pipeline.admission opens it the same way).
    stored = redis_client.hget(names.consent("tpp-demo", "aac-old"), "customer_id").decode()
    assert CUSTOMERS.reveal("aac-old", stored) == CUSTOMER
    revoked = lifecycle.move(store, from_record(found), Status.REVOKED)
    assert revoked.status is Status.REVOKED
    assert redis_client.hget(names.consent("tpp-demo", "aac-old"), "customer_id").startswith(b"sealed:")


def test_the_migration_at_start_seals_everything_an_older_version_stored_in_clear(store, redis_client):
    legacy = _consent("aac-old", Status.AUTHORISED, customer_id=CUSTOMER)
    _store_as_an_older_version(redis_client, legacy)
    _authorised(store, "aac-new")
    assert CUSTOMER.encode() in _everything(redis_client)

    assert seal_customer_ids(redis_client, CUSTOMERS) == 4  # the consent, the index, the refresh token, the code
    assert CUSTOMER.encode() not in _everything(redis_client)
    assert sorted(r["consent_id"] for r in store.of_customer(CUSTOMER)) == ["aac-new", "aac-old"]
    assert from_record(store.get("tpp-demo", "aac-old")) == legacy
    refresh = orjson.loads(redis_client.get(names.refresh_token("tpp-demo", "ab" * 32)))
    assert "customer_id" not in refresh and refresh["subject"] == "cust-x"
    assert 0 < redis_client.ttl(names.refresh_token("tpp-demo", "ab" * 32)) <= 600  # its lifetime kept
    assert seal_customer_ids(redis_client, CUSTOMERS) == 0  # a second start finds nothing to do
