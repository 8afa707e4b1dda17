"""The revocation SET (RFC 8417, UK OB OBEventNotification2) and the notification URL rule: no I/O."""
from __future__ import annotations

from datetime import datetime, timezone

import jwt
import pytest

from gateway.consents.model import Consent, Kind, Status
from gateway.consents.notify import (
    CONSENT_REVOKED,
    SET_TYPE,
    Notifier,
    claims_of,
    notification_url_allowed,
    revocation_entry,
    revocation_event,
)
from gateway.oauth.signing_keys import KeyEncryptionKey, KeyRing, new_key_record, signer

OB = "http://openbanking.org.uk/"
API = "https://api.bank.test"
LINK = f"{API}/open-banking/v3.1/aisp/account-access-consents/aac-1"


def _consent(kind: Kind = Kind.ACCOUNT_ACCESS) -> Consent:
    return Consent(consent_id="aac-1", client_id="tpp-demo", kind=kind, status=Status.REVOKED,
                   created="2026-11-23T10:00:00+00:00", status_updated="2026-11-23T10:05:00+00:00",
                   permissions=("ReadAccountsBasic",), expires=None, transaction_from=None, transaction_to=None,
                   customer_id="cust-1", accounts=("22289",))


def test_the_event_has_the_open_banking_shape():
    claims = revocation_event("tpp-demo", "aac-1", "https://bank.test", LINK, txn="txn-1",
                              occurred_at=datetime(2026, 11, 23, 10, 5, tzinfo=timezone.utc))
    assert set(claims) == {"iss", "iat", "jti", "aud", "sub", "txn", "toe", "events"}
    assert (claims["iss"], claims["aud"], claims["sub"], claims["txn"]) == ("https://bank.test", "tpp-demo", LINK,
                                                                            "txn-1")
    assert claims["toe"] == 1795428300 and isinstance(claims["iat"], int)
    assert claims["events"] == {CONSENT_REVOKED: {"subject": {
        "subject_type": f"{OB}rid_{OB}rty", f"{OB}rid": "aac-1", f"{OB}rty": "account-access-consent",
        f"{OB}rlk": [{"version": "v3.1", "link": LINK}]}}}


def test_every_event_has_its_own_jti():
    assert revocation_event("c", "a", "https://i", LINK)["jti"] != revocation_event("c", "a", "https://i", LINK)["jti"]


def test_the_set_is_typed_and_names_its_key():
    kek = KeyEncryptionKey(bytes(32))
    kid, record = new_key_record(kek)
    ring = KeyRing({kid: record}, overlap=60, kek=kek)
    token = signer(lambda: ring, SET_TYPE)(revocation_event("tpp-demo", "aac-1", "https://bank.test", LINK))
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "typ": "secevent+jwt", "kid": kid}
    assert jwt.decode(token, ring.verification_key(kid), algorithms=["ES256"], audience="tpp-demo")["sub"] == LINK


@pytest.mark.parametrize("url, allowed", [
    ("https://tpp.example/event-notifications", True),
    ("https://tpp.example:8443/events", True),
    ("http://127.0.0.1:9000/events", True),
    ("http://localhost/events", True),
    ("http://[::1]:9000/events", True),
    ("http://tpp.example/events", False),
    ("http://10.0.0.1/events", False),
    ("http://127.0.0.1.evil.example/events", False),
    ("ftp://tpp.example/events", False),
    ("https://user:pw@tpp.example/events", False),
    ("https:///no-host", False),
    ("https://tpp.example:99999/events", False),
    ("not a url", False),
])
def test_only_https_or_loopback_http_is_allowed(url, allowed):
    assert notification_url_allowed(url) is allowed


@pytest.mark.parametrize("options", [{"max_attempts": 0}, {"backoff_seconds": ()}, {"backoff_seconds": (1, -1)},
                                     {"timeout_s": 0}, {"lease_s": 0}])
def test_bad_retry_settings_are_refused_at_construction(options):
    async def noop(*_):
        return None
    with pytest.raises(ValueError):
        Notifier(None, noop, lambda claims: "", noop, issuer="https://bank.test", api_base=API, **options)


def test_the_outbox_holds_ids_and_the_worker_makes_the_same_claims_every_time():
    entry = revocation_entry(_consent(), txn="txn-1")
    assert set(entry) == {"type", "client_id", "consent_id", "kind", "occurred_at", "jti", "txn", "iat"}
    assert "http" not in repr({k: v for k, v in entry.items() if k != "type"})  # no URL, no token
    first, again = claims_of(entry, "https://bank.test", API + "/"), claims_of(dict(entry), "https://bank.test", API)
    assert first == again
    assert (first["jti"], first["txn"], first["sub"], first["toe"]) == (entry["jti"], "txn-1", LINK, 1795428300)


def test_a_payment_consent_is_named_as_one():
    claims = claims_of(revocation_entry(_consent(Kind.DOMESTIC_PAYMENT)), "https://bank.test", API)
    subject = claims["events"][CONSENT_REVOKED]["subject"]
    assert subject[f"{OB}rty"] == "domestic-payment-consent"
    assert claims["sub"] == f"{API}/open-banking/v3.1/pisp/domestic-payment-consents/aac-1"


@pytest.mark.parametrize("change", [{"type": "urn:other"}, {"kind": "mortgage"}, {"jti": ""}, {"client_id": 7},
                                    {"occurred_at": "yesterday"}, {"iat": None}])
def test_an_event_this_gateway_did_not_write_has_no_claims(change):
    assert claims_of(revocation_entry(_consent()) | change, "https://bank.test", API) is None
