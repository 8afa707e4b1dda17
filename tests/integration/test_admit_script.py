"""The Admit script (store/scripts/admit.lua) through AdmissionStore against a real Redis: every verdict it gives."""
from __future__ import annotations

import asyncio
import dataclasses
import os
from datetime import datetime, timedelta, timezone

import pytest

from gateway.audit.customers import CustomerIds
from gateway.consents.model import Consent, Kind, Status, expires_ms, to_record
from gateway.store import names
from gateway.store.admission import AdmissionStore, Verdict
from gateway.store.consents import ConsentStore
from gateway.store.redis import async_client

CLIENT_ID, CONSENT_ID, GRANT_ID, JTI, KID = "tpp-demo", "aac-1", "grant-1", "jti-1", "kid-1"
CUSTOMERS = CustomerIds(os.urandom(32))


def _in(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat(timespec="milliseconds")


def _consent(status: Status = Status.AUTHORISED, expires: str | None = None, grant_id: str | None = GRANT_ID,
             customer_id: str | None = "customer-1", accounts: tuple[str, ...] = ("acc-1", "acc-2")) -> Consent:
    return Consent(consent_id=CONSENT_ID, client_id=CLIENT_ID, kind=Kind.ACCOUNT_ACCESS, status=status,
                   created="2026-06-01T11:00:00+00:00", status_updated="2026-06-01T11:05:00+00:00",
                   permissions=("ReadAccountsBasic", "ReadBalances"), expires=expires, transaction_from=None,
                   transaction_to=None, customer_id=customer_id, accounts=accounts, grant_id=grant_id)


@pytest.fixture
def stored(redis_client):
    """Store a consent as ConsentStore.create does (the record shape is consents.model.to_record)."""
    def store(consent: Consent) -> Consent:
        ConsentStore(redis_client, CUSTOMERS).create(to_record(consent), expires_ms(consent), lapse_seconds=3600)
        return consent
    return store


def _opened(consent_id: str, verdict: Verdict) -> Verdict:
    """The verdict with its customer id opened, as the Admit stage does (pipeline.admission)."""
    if verdict.customer_id is None:
        return verdict
    return dataclasses.replace(verdict, customer_id=CUSTOMERS.reveal(consent_id, verdict.customer_id))


def _admit(redis_url: str, client_id: str = CLIENT_ID, consent_id: str = CONSENT_ID, jti: str = JTI,
           grant_id: str = GRANT_ID, kid: str = KID, **call) -> Verdict:
    async def go() -> Verdict:
        client = async_client(redis_url)
        try:
            verdict = await AdmissionStore(client).admit(client_id, consent_id, jti, grant_id, kid=kid, **call)
            return _opened(consent_id, verdict)
        finally:
            await client.aclose()
    return asyncio.run(go())


def _admit_client(redis_url: str, kid: str = KID) -> Verdict:
    async def go() -> Verdict:
        client = async_client(redis_url)
        try:
            return await AdmissionStore(client).admit_client(CLIENT_ID, JTI, kid=kid)
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_the_customer_id_is_stored_sealed_and_opens_only_for_its_consent(redis_url, redis_client, stored):
    stored(_consent())
    sealed = redis_client.hget(names.consent(CLIENT_ID, CONSENT_ID), "customer_id").decode()  # what Admit reads
    assert sealed.startswith("sealed:") and "customer-1" not in sealed
    assert _admit(redis_url).customer_id == "customer-1"  # opened as the Admit stage opens it
    with pytest.raises(Exception, match="does not open"):
        CUSTOMERS.reveal("aac-2", sealed)  # moved to another consent, it does not open


def test_an_authorised_consent_of_the_client_with_its_grant_is_admitted(redis_url, stored):
    stored(_consent())
    assert _admit(redis_url) == Verdict(None, None, "customer-1", ("acc-1", "acc-2"),
                                        ("ReadAccountsBasic", "ReadBalances"), (None, None))


def test_a_consent_expiring_later_is_admitted(redis_url, stored):
    stored(_consent(expires=_in(timedelta(minutes=5))))
    assert _admit(redis_url).reason is None


@pytest.mark.parametrize("marker", [
    names.revoked_token(CLIENT_ID, JTI), names.revoked_grant(CLIENT_ID, GRANT_ID), names.client_disabled(CLIENT_ID)],
    ids=["revoked-token", "revoked-grant", "client-disabled"])
def test_a_revocation_or_a_disabled_client_refuses_the_token(redis_url, redis_client, stored, marker):
    stored(_consent())
    redis_client.set(marker, b"1")
    assert _admit(redis_url) == Verdict("token.revoked")


def test_revocations_of_other_tokens_grants_and_clients_do_not_matter(redis_url, redis_client, stored):
    stored(_consent())
    redis_client.set(names.revoked_token(CLIENT_ID, "jti-other"), b"1")
    redis_client.set(names.revoked_grant(CLIENT_ID, "grant-other"), b"1")
    redis_client.set(names.client_disabled("tpp-other"), b"1")
    assert _admit(redis_url).reason is None


def test_a_refusal_before_the_consent_is_known_to_be_the_tpps_names_no_customer(redis_url, redis_client, stored):
    stored(_consent())
    assert _admit(redis_url, client_id="tpp-other").customer_id is None  # another TPP learns nothing
    redis_client.set(names.revoked_token(CLIENT_ID, JTI), b"1")
    assert _admit(redis_url).customer_id is None


def test_another_clients_consent_is_not_found(redis_url, stored):
    stored(_consent())
    assert _admit(redis_url, client_id="tpp-other") == Verdict("consent.not_found")


def test_a_missing_consent_is_not_found(redis_url, stored):
    stored(_consent())
    assert _admit(redis_url, consent_id="aac-nope") == Verdict("consent.not_found")


def test_a_consent_hash_naming_another_client_is_not_found(redis_url, redis_client, stored):
    stored(_consent())
    redis_client.hset(names.consent(CLIENT_ID, CONSENT_ID), "client_id", "tpp-other")
    assert _admit(redis_url) == Verdict("consent.not_found")


@pytest.mark.parametrize("status", [Status.AWAITING_AUTHORISATION, Status.REJECTED, Status.REVOKED,
                                    Status.CONSUMED])
def test_a_consent_that_is_not_authorised_refuses(redis_url, stored, status):
    stored(_consent(status=status, grant_id=None if status is Status.AWAITING_AUTHORISATION else GRANT_ID))
    # Refused, but the consent is this TPP's: its customer is named, for the audit (as a pseudonym).
    assert _admit(redis_url) == Verdict("consent.not_authorised", None, "customer-1")


def test_a_token_of_an_earlier_authorisation_is_revoked(redis_url, stored):
    stored(_consent(grant_id="grant-2"))
    assert _admit(redis_url, grant_id=GRANT_ID) == Verdict("token.revoked", None, "customer-1")


def test_an_expired_consent_refuses(redis_url, stored):
    stored(_consent(expires=_in(timedelta(seconds=-1))))
    assert _admit(redis_url) == Verdict("consent.expired", None, "customer-1")


def test_a_revoked_signing_key_refuses_its_tokens_in_both_admission_scripts(redis_url, redis_client, stored):
    stored(_consent())
    redis_client.set(names.revoked_key(CLIENT_ID, KID), b"1")  # what `obgw keys revoke` writes
    assert _admit(redis_url) == Verdict("token.key_revoked")
    assert _admit_client(redis_url) == Verdict("token.key_revoked")
    assert _admit(redis_url, kid="kid-2").reason is None and _admit_client(redis_url, kid="kid-2").reason is None
    redis_client.delete(names.revoked_key(CLIENT_ID, KID))
    redis_client.set(names.revoked_key("tpp-other", KID), b"1")  # another TPP's marker is not this one's
    assert _admit(redis_url).reason is None


def test_revocation_is_checked_before_the_consent(redis_url, redis_client, stored):
    stored(_consent(status=Status.AWAITING_AUTHORISATION, expires=_in(timedelta(seconds=-1))))
    redis_client.set(names.revoked_token(CLIENT_ID, JTI), b"1")
    assert _admit(redis_url) == Verdict("token.revoked")


def test_a_permission_the_consent_lacks_is_refused_and_any_one_of_the_routes_suffices(redis_url, stored):
    stored(_consent())
    assert _admit(redis_url, permissions={"ReadTransactionsBasic", "ReadTransactionsDetail"}).reason == \
        "consent.permission_missing"
    assert _admit(redis_url, permissions={"ReadAccountsBasic", "ReadAccountsDetail"}).reason is None


def test_an_account_the_customer_did_not_select_is_refused(redis_url, stored):
    stored(_consent())
    assert _admit(redis_url, account_id="acc-3").reason == "consent.account_not_selected"
    assert _admit(redis_url, account_id="acc-2").reason is None


def test_the_unattended_allowance_counts_only_unattended_calls_that_pass(redis_url, stored):
    stored(_consent())
    for _ in range(3):
        assert _admit(redis_url, unattended=True, allowance=3).reason is None
    refused = _admit(redis_url, unattended=True, allowance=3)
    assert refused.reason == "consent.unattended_limit" and 86_000_000 < refused.retry_ms <= 86_400_000
    assert _admit(redis_url, unattended=False, allowance=3).reason is None      # customer present: never counted
    # A refused call is not charged: with a fresh allowance of 5, two more unattended calls pass.
    assert _admit(redis_url, unattended=True, allowance=5, account_id="acc-9").reason == "consent.account_not_selected"
    assert [_admit(redis_url, unattended=True, allowance=5).reason for _ in range(3)] == [None, None,
                                                                                          "consent.unattended_limit"]


def test_the_unattended_window_rolls(redis_url, stored):
    import time
    stored(_consent())
    assert _admit(redis_url, unattended=True, allowance=1, window_seconds=1).reason is None
    assert _admit(redis_url, unattended=True, allowance=1, window_seconds=1).reason == "consent.unattended_limit"
    time.sleep(1.1)
    assert _admit(redis_url, unattended=True, allowance=1, window_seconds=1).reason is None
