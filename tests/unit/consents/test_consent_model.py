"""Consents as data: the transition table, expiry computed on read, usability, and the stored record."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from gateway.consents.model import (
    TRANSITIONS,
    Consent,
    Kind,
    Status,
    expires_ms,
    from_record,
    sources_of,
    to_record,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)

CONSENT = Consent(consent_id="aac-1", client_id="tpp-demo", kind=Kind.ACCOUNT_ACCESS,
                  status=Status.AWAITING_AUTHORISATION, created="2026-06-01T11:00:00+00:00",
                  status_updated="2026-06-01T11:00:00+00:00", permissions=("ReadAccountsBasic", "ReadBalances"),
                  expires=None, transaction_from=None, transaction_to=None, customer_id=None, accounts=())


def test_every_status_has_a_row_in_the_transition_table():
    assert set(TRANSITIONS) == set(Status)


def test_the_uk_ob_transitions_are_the_only_ones():
    assert {(str(a), str(b)) for a, targets in TRANSITIONS.items() for b in targets} == {
        ("AwaitingAuthorisation", "Authorised"), ("AwaitingAuthorisation", "Rejected"),
        ("AwaitingAuthorisation", "Revoked"), ("Authorised", "Revoked"), ("Authorised", "Consumed"),
        ("AwaitingUpload", "AwaitingAuthorisation")}  # a file-payment consent, once its file is uploaded


@pytest.mark.parametrize("terminal", [Status.REJECTED, Status.REVOKED, Status.CONSUMED])
def test_a_terminal_status_leads_nowhere(terminal):
    assert TRANSITIONS[terminal] == frozenset()


@pytest.mark.parametrize("target, sources", [
    (Status.AUTHORISED, {Status.AWAITING_AUTHORISATION}),
    (Status.REJECTED, {Status.AWAITING_AUTHORISATION}),
    (Status.REVOKED, {Status.AWAITING_AUTHORISATION, Status.AUTHORISED}),
    (Status.CONSUMED, {Status.AUTHORISED}),
    (Status.AWAITING_AUTHORISATION, {Status.AWAITING_UPLOAD}),
    (Status.AWAITING_UPLOAD, set()),
])
def test_sources_of_a_status_are_the_statuses_that_may_move_to_it(target, sources):
    assert sources_of(target) == sources


def test_a_consent_without_expiry_never_expires():
    assert not CONSENT.expired(NOW + timedelta(days=36500))


@pytest.mark.parametrize("offset, expired", [(timedelta(seconds=-1), True), (timedelta(0), True),
                                             (timedelta(milliseconds=1), False)],
                         ids=["a-second-ago", "this-instant", "a-millisecond-ahead"])
def test_a_consent_is_expired_from_its_expiration_instant_on(offset, expired):
    assert replace(CONSENT, expires=(NOW + offset).isoformat()).expired(NOW) is expired


def test_expiry_is_compared_as_an_instant_whatever_the_zone():
    in_paris = (NOW + timedelta(minutes=30)).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert not replace(CONSENT, expires=in_paris).expired(NOW)
    assert replace(CONSENT, expires=in_paris).expired(NOW + timedelta(minutes=31))


def test_expiry_defaults_to_the_current_time():
    past = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert replace(CONSENT, expires=past).expired()
    assert not replace(CONSENT, expires=future).expired()


def test_only_an_authorised_unexpired_consent_is_offered_for_withdrawal():
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    past = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    assert replace(CONSENT, status=Status.AUTHORISED).revocable
    assert replace(CONSENT, status=Status.AUTHORISED, expires=future).revocable
    assert not replace(CONSENT, status=Status.AUTHORISED, expires=past).revocable
    for status in set(Status) - {Status.AUTHORISED}:
        assert not replace(CONSENT, status=status, expires=future).revocable


@pytest.mark.parametrize("consent", [
    CONSENT,
    replace(CONSENT, status=Status.AUTHORISED, expires="2026-09-01T00:00:00+00:00",
            transaction_from="2025-01-01T00:00:00+00:00", transaction_to="2025-12-31T00:00:00+00:00",
            customer_id="customer-1", accounts=("acc-1", "acc-2"), grant_id="grant-1", deleted=True),
    replace(CONSENT, kind=Kind.DOMESTIC_PAYMENT, permissions=(), status=Status.CONSUMED,
            initiation={"InstructionIdentification": "i-1", "InstructedAmount": {"Amount": "10.00",
                                                                                 "Currency": "GBP"}}),
], ids=["awaiting", "authorised-full", "payment"])
def test_a_consent_survives_its_record_round_trip(consent):
    record = to_record(consent)
    assert from_record(record) == consent
    assert type(record["kind"]) is str and type(record["status"]) is str  # plain JSON, not enum members


def test_a_sparse_record_reads_with_the_defaults():
    record = {k: v for k, v in to_record(CONSENT).items()
              if k not in ("permissions", "accounts", "initiation", "grant_id", "deleted")}
    consent = from_record(record)
    assert (consent.permissions, consent.accounts, consent.initiation, consent.grant_id, consent.deleted) == (
        (), (), None, None, False)


def test_expires_ms_is_the_expiry_in_epoch_milliseconds():
    assert expires_ms(CONSENT) is None
    expires = datetime(2026, 6, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
    assert expires_ms(replace(CONSENT, expires=expires.isoformat())) == 1_780_315_200_250


def test_each_kind_needs_its_scope():
    assert (Kind.ACCOUNT_ACCESS.scope, Kind.DOMESTIC_PAYMENT.scope) == ("accounts", "payments")
