"""ConsentStore and lifecycle.move against a real Redis: records, owners, and the compare-and-set transitions."""
from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from gateway.audit.customers import CustomerIds
from gateway.consents import lifecycle
from gateway.consents.lifecycle import ConsentConflict
from gateway.consents.model import (
    Consent,
    Kind,
    Status,
    expires_ms,
    from_record,
    to_record,
)
from gateway.store import names
from gateway.store.consents import ConsentStore

EXPIRES = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0).isoformat()


def _consent(consent_id: str = "aac-1", client_id: str = "tpp-demo", status: Status = Status.AWAITING_AUTHORISATION,
             expires: str | None = EXPIRES) -> Consent:
    return Consent(consent_id=consent_id, client_id=client_id, kind=Kind.ACCOUNT_ACCESS, status=status,
                   created="2026-06-01T11:00:00+00:00", status_updated="2026-06-01T11:00:00+00:00",
                   permissions=("ReadAccountsBasic", "ReadBalances"), expires=expires, transaction_from=None,
                   transaction_to=None, customer_id=None, accounts=())


@pytest.fixture
def store(redis_client):
    return ConsentStore(redis_client, CustomerIds(os.urandom(32)))


def _create(store: ConsentStore, consent: Consent) -> Consent:
    store.create(to_record(consent), expires_ms(consent), lapse_seconds=3600)
    return consent


def test_a_created_consent_is_read_back_and_its_owner_known(store):
    consent = _create(store, _consent())
    assert from_record(store.get("tpp-demo", "aac-1")) == consent
    assert store.owner("aac-1") == "tpp-demo"


def test_a_consent_is_not_found_under_another_client_or_another_id(store):
    _create(store, _consent())
    assert store.get("tpp-other", "aac-1") is None
    assert store.get("tpp-demo", "aac-2") is None
    assert store.owner("aac-2") is None


def test_the_hash_carries_the_fields_admit_reads(store, redis_client):
    consent = _create(store, _consent())
    fields = redis_client.hgetall(names.consent("tpp-demo", "aac-1"))
    assert {k: fields[k] for k in (b"client_id", b"status", b"expires_ms", b"customer_id", b"grant_id",
                                   b"accounts")} == {
        b"client_id": b"tpp-demo", b"status": b"AwaitingAuthorisation",
        b"expires_ms": str(expires_ms(consent)).encode(), b"customer_id": b"", b"grant_id": b"", b"accounts": b"[]"}


def test_an_awaiting_consent_can_be_authorised(store, redis_client):
    consent = _create(store, _consent())
    moved = lifecycle.move(store, consent, Status.AUTHORISED, customer_id="customer-1",
                           accounts=("acc-1", "acc-2"), grant_id="grant-1")
    assert moved.status is Status.AUTHORISED
    assert from_record(store.get("tpp-demo", "aac-1")) == moved
    fields = redis_client.hmget(names.consent("tpp-demo", "aac-1"), "status", "customer_id", "grant_id", "accounts")
    assert [fields[0], *fields[2:]] == [b"Authorised", b"grant-1", b'["acc-1","acc-2"]']
    assert fields[1].startswith(b"sealed:")  # the customer id only sealed, in the hash as in the record
    assert b"customer-1" not in b"".join(redis_client.hgetall(names.consent("tpp-demo", "aac-1")).values())


def test_authorising_twice_conflicts_with_the_authorised_status_and_changes_nothing(store):
    consent = _create(store, _consent())
    first = lifecycle.move(store, consent, Status.AUTHORISED, customer_id="customer-1", grant_id="grant-1")
    with pytest.raises(ConsentConflict) as conflict:
        lifecycle.move(store, consent, Status.AUTHORISED, customer_id="customer-2", grant_id="grant-2")
    assert conflict.value.found == "Authorised"
    assert from_record(store.get("tpp-demo", "aac-1")) == first


def test_a_rejected_consent_cannot_be_authorised(store):
    consent = _create(store, _consent())
    lifecycle.move(store, consent, Status.REJECTED)
    with pytest.raises(ConsentConflict) as conflict:
        lifecycle.move(store, consent, Status.AUTHORISED, customer_id="customer-1", grant_id="grant-1")
    assert conflict.value.found == "Rejected"
    assert store.get("tpp-demo", "aac-1")["status"] == "Rejected"


def test_an_authorised_consent_can_be_revoked_but_not_rejected(store):
    authorised = lifecycle.move(store, _create(store, _consent()), Status.AUTHORISED, grant_id="grant-1")
    with pytest.raises(ConsentConflict) as conflict:
        lifecycle.move(store, authorised, Status.REJECTED)
    assert conflict.value.found == "Authorised"
    assert lifecycle.move(store, authorised, Status.REVOKED).status is Status.REVOKED
    assert store.get("tpp-demo", "aac-1")["status"] == "Revoked"


def test_moving_a_missing_consent_finds_it_missing_and_creates_nothing(store, redis_client):
    with pytest.raises(ConsentConflict) as conflict:
        lifecycle.move(store, _consent("aac-ghost"), Status.AUTHORISED, grant_id="grant-1")
    assert conflict.value.found == "missing"
    assert not redis_client.exists(names.consent("tpp-demo", "aac-ghost"))


def test_a_consent_of_another_client_cannot_be_moved_through_this_clients_key(store):
    _create(store, _consent())
    with pytest.raises(ConsentConflict) as conflict:
        lifecycle.move(store, replace(_consent(), client_id="tpp-other"), Status.AUTHORISED, grant_id="grant-1")
    assert conflict.value.found == "missing"
    assert store.get("tpp-demo", "aac-1")["status"] == "AwaitingAuthorisation"


def test_a_transition_stores_the_new_expiry_for_admit(store, redis_client):
    consent = _create(store, _consent(expires=None))
    assert redis_client.hget(names.consent("tpp-demo", "aac-1"), "expires_ms") == b""
    moved = lifecycle.move(store, consent, Status.AUTHORISED, grant_id="grant-1", expires=EXPIRES)
    assert redis_client.hget(names.consent("tpp-demo", "aac-1"), "expires_ms") == str(expires_ms(moved)).encode()
