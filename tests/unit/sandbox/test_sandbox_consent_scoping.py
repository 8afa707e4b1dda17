"""Payments service: a payment is read (with its details, and a file's report) under its own consent only.

The gateway names the consent of the TPP's access token in x-bank-consent-id; a payment made under another consent,
even the same customer's, is answered as one that does not exist. Without the header, the customer's payments are
read as before.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import timedelta

import orjson
import pytest
from pisp_requests import (
    PISP,
    domestic,
    headers,
    international,
    international_scheduled,
    international_standing_order,
    payment_id,
    request,
    scheduled,
    standing_order,
    vrp,
    who,
)

CONSENT_HEADER = "x-bank-consent-id"
CONSENT = "c-A"


def file_payment(consent_id: str) -> dict:
    content = orjson.dumps({"Data": {"DomesticPayments": [domestic("10.00")]}})
    initiation = {"FileType": "UK.OBIE.PaymentInitiation.3.1", "NumberOfTransactions": "1", "ControlSum": 10.0,
                  "FileHash": base64.b64encode(hashlib.sha256(content).digest()).decode()}
    return {"Data": {"ConsentId": consent_id, "Initiation": initiation}, "File": base64.b64encode(content).decode()}


# Each kind: its path under /pisp, and its request under a consent (given a date a day ahead of the bank's time).
KINDS: dict[str, Callable] = {
    "domestic-payments": lambda consent, later: request(domestic(), consent),
    "domestic-scheduled-payments": lambda consent, later: request(scheduled(later), consent),
    "domestic-standing-orders": lambda consent, later: request(standing_order(later), consent),
    "international-payments": lambda consent, later: request(international(), consent),
    "international-scheduled-payments": lambda consent, later: request(international_scheduled(later), consent),
    "international-standing-orders": lambda consent, later: request(international_standing_order(later), consent),
    "file-payments": lambda consent, later: file_payment(consent),
    "domestic-vrps": lambda consent, later: vrp(consent_id=consent),
}
READS = {kind: ["", "/payment-details"] for kind in KINDS} | {"file-payments": ["", "/payment-details", "/report-file"]}
CASES = [(kind, read) for kind, reads in READS.items() for read in reads]


def make(client, clock, kind: str, consent_id: str = CONSENT) -> str:
    """The path of a new payment of `kind` under `consent_id`, made by alice."""
    body = KINDS[kind](consent_id, clock.now + timedelta(days=1))
    response = client.post(f"{PISP}/{kind}", json=body, headers=headers() | {"x-idempotency-key": "key-1"})
    assert response.status_code == 201, response.text
    return f"{PISP}/{kind}/{payment_id(response.json())}"


def errors(response) -> list[dict]:
    assert response.status_code == 404, response.text
    return response.json()["Errors"]


@pytest.mark.parametrize(("kind", "read"), CASES)
def test_the_payments_own_consent_reads_it_as_before(clocked_payments, clock, kind: str, read: str) -> None:
    path = make(clocked_payments, clock, kind) + read
    unscoped = clocked_payments.get(path, headers=who())
    scoped = clocked_payments.get(path, headers=who() | {CONSENT_HEADER: CONSENT})
    assert unscoped.status_code == 200, unscoped.text
    assert scoped.json() == unscoped.json()


@pytest.mark.parametrize(("kind", "read"), CASES)
def test_another_consent_reads_it_as_if_it_did_not_exist(clocked_payments, clock, assert_ob, kind: str,
                                                         read: str) -> None:
    path = make(clocked_payments, clock, kind) + read
    other = clocked_payments.get(path, headers=who() | {CONSENT_HEADER: "c-B"})
    assert_ob(other.json(), "vrp" if kind == "domestic-vrps" else "pisp", "OBErrorResponse1")
    unknown = clocked_payments.get(f"{PISP}/{kind}/no-such-payment{read}", headers=who() | {CONSENT_HEADER: "c-B"})
    assert errors(other) == errors(unknown)
    assert errors(other)[0]["ErrorCode"] == "UK.OBIE.Resource.NotFound"


@pytest.mark.parametrize("kind", ["domestic-payments", "file-payments", "domestic-vrps"])
def test_the_right_consent_does_not_open_another_customers_payment(clocked_payments, clock, kind: str) -> None:
    path = make(clocked_payments, clock, kind)
    assert clocked_payments.get(path, headers=who("bob") | {CONSENT_HEADER: CONSENT}).status_code == 404


def test_of_one_customers_payments_each_consent_reads_its_own(clocked_payments, clock) -> None:
    first = make(clocked_payments, clock, "domestic-payments", "c-A")
    second = make(clocked_payments, clock, "domestic-payments", "c-B")
    for path, consent, status in ((first, "c-A", 200), (first, "c-B", 404), (second, "c-B", 200),
                                  (second, "c-A", 404)):
        response = clocked_payments.get(f"{path}/payment-details", headers=who() | {CONSENT_HEADER: consent})
        assert response.status_code == status, (path, consent)


def test_request_fixtures_are_valid(assert_ob, clock) -> None:
    later = clock.now + timedelta(days=1)
    schemas = {"domestic-payments": "OBWriteDomestic2", "domestic-scheduled-payments": "OBWriteDomesticScheduled2",
               "domestic-standing-orders": "OBWriteDomesticStandingOrder3",
               "international-payments": "OBWriteInternational3",
               "international-scheduled-payments": "OBWriteInternationalScheduled3",
               "international-standing-orders": "OBWriteInternationalStandingOrder4", "file-payments": "OBWriteFile2"}
    for kind, schema in schemas.items():
        body = KINDS[kind](CONSENT, later)
        body.pop("File", None)
        assert_ob(body, "pisp", schema)
    assert_ob(KINDS["domestic-vrps"](CONSENT, later), "vrp", "OBDomesticVRPRequest")
