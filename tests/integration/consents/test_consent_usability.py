""""Is this consent usable?" has one answer: the authorization server (refresh, introspection, revocation) and the
Admit script (every resource call) ask the same Lua function (store/scripts/consent_rules.lua) on Redis's clock.

Each case stores one consent and asks both sides, for a token of the consent's own authorisation.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from gateway.audit.customers import CustomerIds
from gateway.consents.model import Consent, Kind, Status, expires_ms, to_record
from gateway.oauth.server import build_authorization_server
from gateway.settings import Settings
from gateway.store.admission import AdmissionStore
from gateway.store.consent_rules import ConsentRules
from gateway.store.consents import ConsentStore
from gateway.store.redis import async_client

CLIENT_ID, CONSENT_ID, GRANT_ID = "tpp-demo", "aac-1", "grant-1"


def _in(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat(timespec="milliseconds")


AUTHORISED = Consent(consent_id=CONSENT_ID, client_id=CLIENT_ID, kind=Kind.ACCOUNT_ACCESS, status=Status.AUTHORISED,
                     created="2026-06-01T11:00:00+00:00", status_updated="2026-06-01T11:05:00+00:00",
                     permissions=("ReadAccountsBasic",), expires=None, transaction_from=None, transaction_to=None,
                     customer_id="customer-1", accounts=("acc-1",), grant_id=GRANT_ID)
AWAITING = replace(AUTHORISED, status=Status.AWAITING_AUTHORISATION, customer_id=None, accounts=(), grant_id=None)

# (case, the consent stored, the reason both sides give: None = usable)
CASES = [
    ("Authorised", AUTHORISED, None),
    ("Authorised, ExpirationDateTime ahead", replace(AUTHORISED, expires=_in(timedelta(hours=1))), None),
    ("Expired (Authorised past ExpirationDateTime)", replace(AUTHORISED, expires=_in(-timedelta(seconds=1))),
     "consent.expired"),
    ("Consumed", replace(AUTHORISED, status=Status.CONSUMED), "consent.not_authorised"),
    ("Revoked", replace(AUTHORISED, status=Status.REVOKED), "consent.not_authorised"),
    ("Rejected", replace(AWAITING, status=Status.REJECTED), "consent.not_authorised"),
    ("AwaitingAuthorisation", AWAITING, "consent.not_authorised"),
    ("AwaitingAuthorisation past authorise_by", replace(AWAITING, authorise_by=_in(-timedelta(seconds=1))),
     "consent.not_authorised"),
    ("AwaitingAuthorisation past ExpirationDateTime", replace(AWAITING, expires=_in(-timedelta(seconds=1))),
     "consent.not_authorised"),
    ("Authorised again since (another grant)", replace(AUTHORISED, grant_id="grant-2"), "token.revoked"),
    ("another TPP's", replace(AUTHORISED, client_id="tpp-other"), "consent.not_found"),
]


@pytest.fixture
def server(redis_client, tmp_path, pki):
    settings = Settings.load(environ={"OBGW_VAR_DIR": str(tmp_path), "OBGW_CLIENT_CA": str(pki / "ca.pem")})
    return build_authorization_server(settings, redis_client)


def _store(redis_client, consent: Consent) -> None:
    ConsentStore(redis_client, CustomerIds(bytes(32))).create(to_record(consent), expires_ms(consent),
                                                              lapse_seconds=3600)


def _admit(redis_url: str, allows_consumed: bool = False) -> str | None:
    async def go() -> str | None:
        client = async_client(redis_url)
        try:
            verdict = await AdmissionStore(client).admit(CLIENT_ID, CONSENT_ID, "jti-1", GRANT_ID, kid="kid-1",
                                                         allows_consumed=allows_consumed)
            return verdict.reason
        finally:
            await client.aclose()
    return asyncio.run(go())


@pytest.mark.parametrize(("consent", "reason"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_the_authorization_server_and_admit_agree(redis_url, redis_client, server, consent, reason):
    _store(redis_client, consent)
    assert _admit(redis_url) == reason
    assert server.consent_usable(CLIENT_ID, CONSENT_ID, GRANT_ID) is (reason is None)
    assert server.consent_rules.refusal(CLIENT_ID, CONSENT_ID, GRANT_ID) == reason


def test_a_missing_consent_is_not_found_by_either(redis_url, server):
    assert _admit(redis_url) == "consent.not_found"
    assert not server.consent_usable(CLIENT_ID, CONSENT_ID, GRANT_ID)


@pytest.mark.parametrize(("consent", "reason"), [
    (replace(AUTHORISED, status=Status.CONSUMED), None),
    (replace(AUTHORISED, status=Status.CONSUMED, expires=_in(-timedelta(seconds=1))), "consent.expired"),
    (replace(AUTHORISED, status=Status.REVOKED), "consent.not_authorised"),
], ids=["Consumed", "Consumed past ExpirationDateTime", "Revoked"])
def test_on_a_route_reading_a_paid_payment_they_agree_too(redis_url, redis_client, server, consent, reason):
    _store(redis_client, consent)
    assert _admit(redis_url, allows_consumed=True) == reason
    assert ConsentRules(redis_client).refusal(CLIENT_ID, CONSENT_ID, GRANT_ID, allows_consumed=True) == reason
