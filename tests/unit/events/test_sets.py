"""The events' SETs (RFC 8417, UK OB OBEventNotification1/2) from their facts, checked against the vendored
event-notifications schema: no I/O."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from support.events import assert_notification

from gateway.consents.model import Consent, Kind, Status
from gateway.consents.notify import (
    CONSENT_REVOKED,
    EVENT_TYPES,
    RESOURCE_UPDATE,
    authorisation_entry,
    claims_of,
    resource_entry,
    revocation_entry,
)
from gateway.events.bank_feed import PAYMENT_RESOURCES, payment_entry

OB = "http://openbanking.org.uk/"
ISSUER = API = "https://obgw.test:8443"
CHANGE = {"seq": 7, "payment_id": "dp-0123abcd", "type": "domestic-payment", "consent_id": "pdc-1",
          "status": "AcceptedSettlementCompleted", "at": "2026-11-23T10:05:00+00:00"}


def _consent(kind: Kind = Kind.ACCOUNT_ACCESS, status: Status = Status.REVOKED) -> Consent:
    return Consent(consent_id="aac-1", client_id="tpp-demo", kind=kind, status=status,
                   created="2026-11-23T10:00:00+00:00", status_updated="2026-11-23T10:05:00+00:00",
                   permissions=("ReadAccountsBasic",), expires=None, transaction_from=None, transaction_to=None,
                   customer_id="cust-1", accounts=("22289",))


def _subject(claims: dict) -> dict:
    [event] = claims["events"].values()
    return event["subject"]


def test_a_payment_status_change_is_a_resource_update_of_the_payment():
    claims = claims_of(payment_entry(CHANGE, "epoch-1", "tpp-demo"), ISSUER, API)
    assert_notification(claims)  # OBEventNotification1 (the vendored schema) as well as OBEventNotification2
    link = f"{API}/open-banking/v3.1/pisp/domestic-payments/dp-0123abcd"
    assert (claims["aud"], claims["sub"], claims["toe"]) == ("tpp-demo", link, 1795428300)
    assert _subject(claims) == {"subject_type": f"{OB}rid_{OB}rty", f"{OB}rid": "dp-0123abcd",
                                f"{OB}rty": "domestic-payment", f"{OB}rlk": [{"version": "v3.1", "link": link}]}
    assert list(claims["events"]) == [RESOURCE_UPDATE]
    assert claims["txn"] == claims["jti"]  # OB: txn may be the jti


def test_a_revocation_is_an_ob_event_notification_2():
    claims = claims_of(revocation_entry(_consent(), txn="txn-1"), ISSUER, API)
    assert_notification(claims)
    assert list(claims["events"]) == [CONSENT_REVOKED]


def test_an_authorisation_is_a_resource_update_of_the_consent():
    claims = claims_of(authorisation_entry(_consent(Kind.DOMESTIC_PAYMENT, Status.AUTHORISED)), ISSUER, API)
    assert_notification(claims)
    assert list(claims["events"]) == [RESOURCE_UPDATE]
    assert _subject(claims)[f"{OB}rty"] == "domestic-payment-consent"
    assert claims["sub"] == f"{API}/open-banking/v3.1/pisp/domestic-payment-consents/aac-1"


def test_every_payment_kind_links_to_its_collection_at_the_gateway():
    for kind, collection in PAYMENT_RESOURCES.items():
        claims = claims_of(payment_entry(CHANGE | {"type": kind}, "e", "tpp-demo"), ISSUER, API)
        assert claims["sub"] == f"{API}/open-banking/v3.1/pisp/{collection}/dp-0123abcd"
    assert PAYMENT_RESOURCES["domestic-vrp"] == "domestic-vrps"


def test_a_change_read_twice_is_one_event_and_another_bank_process_makes_another():
    first, again = payment_entry(CHANGE, "epoch-1", "tpp-demo"), payment_entry(dict(CHANGE), "epoch-1", "tpp-demo")
    assert first["jti"] == again["jti"]
    assert payment_entry(CHANGE, "epoch-2", "tpp-demo")["jti"] != first["jti"]
    assert payment_entry(CHANGE | {"seq": 8}, "epoch-1", "tpp-demo")["jti"] != first["jti"]


@pytest.mark.parametrize("change", [{"type": "mortgage"}, {"payment_id": "../../aisp/accounts"}, {"payment_id": ""},
                                    {"consent_id": None}, {"at": "2026-11-23T10:05:00"}, {"at": "yesterday"},
                                    {"seq": "seven"}])
def test_a_change_the_gateway_cannot_name_safely_is_not_told(change):
    assert payment_entry(CHANGE | change, "e", "tpp-demo") is None


def test_an_event_links_only_under_the_gateways_api():
    entry = resource_entry("tpp-demo", "pdc-1", "dp-1", "domestic-payment", "/open-banking/v3.1/pisp/x/dp-1",
                           datetime(2026, 11, 23, tzinfo=timezone.utc))
    assert claims_of(entry, ISSUER, API) is not None
    assert claims_of(entry | {"path": "//evil.example/x"}, ISSUER, API) is None
    assert claims_of(entry | {"type": "urn:uk:org:openbanking:events:other"}, ISSUER, API) is None
    assert set(EVENT_TYPES) == {RESOURCE_UPDATE, CONSENT_REVOKED}
