"""File payments (UK OB v3.1.11 Payment Initiation API) through `obgw serve` (2 workers) and the sandbox bank: the
consent AwaitingUpload, its file uploaded once and checked against FileHash, NumberOfTransactions and ControlSum
before it is kept, read back as uploaded, the customer told how many payments and how much, the payment made once
with the file reaching the bank, replayed the same, the consent Consumed, and the payment, its details and the
bank's report file read back."""
from __future__ import annotations

import base64
import hashlib
import secrets

import httpx
import orjson
import pytest
from support.openapi import assert_conforms
from support.payment_data import PISP, initiation_of, payment_file
from support.tpp import CUSTOMER_PRESENT, Tpp

from gateway.payments.jws import sign_detached

pytestmark = pytest.mark.e2e

CONSENTS = f"{PISP}/file-payment-consents"
PAYMENTS = f"{PISP}/file-payments"


@pytest.fixture(scope="module")
def pisp(module_tpp):
    return module_tpp


def _signed(tpp: Tpp, content: bytes, token: str, key: str | None = None) -> dict:
    return {"Authorization": f"Bearer {token}", "content-type": "application/json", **CUSTOMER_PRESENT,
            "x-idempotency-key": key or secrets.token_hex(8),
            "x-jws-signature": sign_detached(content, tpp.jwk, tpp.client_id)}


def _post(tpp: Tpp, path: str, content: bytes, token: str, key: str | None = None) -> httpx.Response:
    return tpp.http.post(tpp.base + path, content=content, headers=_signed(tpp, content, token, key))


def _consent(tpp: Tpp, initiation: dict) -> tuple[str, str]:
    """A new file-payment consent: (its id, the client-credentials token)."""
    cc = tpp.client_credentials("payments")["access_token"]
    created = _post(tpp, CONSENTS, orjson.dumps({"Data": {"Initiation": initiation}}), cc)
    assert created.status_code == 201, created.text
    assert_conforms(created.json(), "OBWriteFileConsentResponse4", "pisp")
    assert "x-jws-signature" in created.headers
    return created.json()["Data"]["ConsentId"], cc


def _status(tpp: Tpp, consent_id: str, cc: str) -> str:
    read = tpp.http.get(f"{tpp.base}{CONSENTS}/{consent_id}", headers={"Authorization": f"Bearer {cc}"})
    assert read.status_code == 200, read.text
    return read.json()["Data"]["Status"]


def test_a_file_is_uploaded_authorised_and_paid_once(pisp):
    content = payment_file("10.00", "20.00", "30.00")
    initiation = initiation_of(content)
    consent_id, cc = _consent(pisp, initiation)
    assert _status(pisp, consent_id, cc) == "AwaitingUpload"
    refused, _ = pisp.push(consent_id, scope="openid payments")  # nothing to authorise before the file is there
    assert refused.status_code == 400, refused.text

    key = secrets.token_hex(8)
    uploaded = _post(pisp, f"{CONSENTS}/{consent_id}/file", content, cc, key)
    assert (uploaded.status_code, uploaded.content) == (200, b""), uploaded.text
    assert _post(pisp, f"{CONSENTS}/{consent_id}/file", content, cc, key).status_code == 200  # the same key: replayed
    again = _post(pisp, f"{CONSENTS}/{consent_id}/file", content, cc)
    assert again.status_code == 400 and again.json()["Errors"][0]["ErrorCode"] == \
        "UK.OBIE.Resource.InvalidConsentStatus"
    assert _status(pisp, consent_id, cc) == "AwaitingAuthorisation"
    read = pisp.http.get(f"{pisp.base}{CONSENTS}/{consent_id}/file", headers={"Authorization": f"Bearer {cc}"})
    assert (read.status_code, read.content) == (200, content)

    pages: list = []
    token = pisp.authorise_payment(consent_id, debtor="acc-alice-current", inspect=pages.append)["access_token"]
    assert "3 payments in the file PAYROLL-DEC, £60.00 in all, now" in pages[0].text

    other = orjson.dumps({"Data": {"ConsentId": consent_id, "Initiation": {**initiation, "FileReference": "OTHER"}}})
    mismatch = _post(pisp, PAYMENTS, other, token)
    assert mismatch.status_code == 400
    assert mismatch.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.ConsentMismatch"

    body = orjson.dumps({"Data": {"ConsentId": consent_id, "Initiation": initiation}})
    key = secrets.token_hex(8)
    paid = _post(pisp, PAYMENTS, body, token, key)
    assert paid.status_code == 201, paid.text
    assert_conforms(paid.json(), "OBWriteFileResponse3", "pisp")
    assert "x-jws-signature" in paid.headers
    replay = _post(pisp, PAYMENTS, body, token, key)
    assert (replay.status_code, replay.content) == (201, paid.content)
    assert _post(pisp, PAYMENTS, body, token).status_code in (400, 403)  # the consent is used up
    assert _status(pisp, consent_id, cc) == "Consumed"

    payment_id = paid.json()["Data"]["FilePaymentId"]
    pisp.read_payment(f"{PAYMENTS}/{payment_id}", token, "OBWriteFileResponse3", "OBWritePaymentDetailsResponse1")
    report = pisp.get(f"{PAYMENTS}/{payment_id}/report-file", token)
    assert report.status_code == 200, report.text
    assert report.headers["content-type"].startswith("application/json")
    payments = report.json()["Data"]["Payments"]
    assert [p["InstructedAmount"]["Amount"] for p in payments] == ["10.00", "20.00", "30.00"]
    assert {p["Status"] for p in payments} == {"AcceptedSettlementCompleted"}


@pytest.mark.parametrize("change, path", [
    ({"FileHash": base64.b64encode(hashlib.sha256(b"another file").digest()).decode()}, "Data.Initiation.FileHash"),
    ({"NumberOfTransactions": "4"}, "Data.Initiation.NumberOfTransactions"),
    ({"ControlSum": 60.01}, "Data.Initiation.ControlSum"),
])
def test_a_file_that_is_not_the_consents_is_refused_and_nothing_changes(pisp, change, path):
    content = payment_file("10.00", "20.00", "30.00")
    consent_id, cc = _consent(pisp, {**initiation_of(content), **change})
    refused = _post(pisp, f"{CONSENTS}/{consent_id}/file", content, cc)
    assert refused.status_code == 400, refused.text
    assert_conforms(refused.json(), "OBErrorResponse1")
    assert refused.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Field.Invalid"
    assert refused.json()["Errors"][0]["Path"] == path
    assert _status(pisp, consent_id, cc) == "AwaitingUpload"
    unread = pisp.http.get(f"{pisp.base}{CONSENTS}/{consent_id}/file", headers={"Authorization": f"Bearer {cc}"})
    assert unread.status_code == 400 and unread.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.NotFound"


@pytest.mark.parametrize("content, path", [
    (b"not json", "File"),
    (orjson.dumps({"Data": {"DomesticPayments": [{"InstructedAmount": {"Amount": "1.00", "Currency": "GBP"}}]}}),
     "Data.DomesticPayments.0.CreditorAccount"),  # the first field it lacks
])
def test_a_file_that_is_not_a_payment_file_is_refused_naming_where(pisp, content, path):
    consent_id, cc = _consent(pisp, initiation_of(content, count="1", total=1.0))
    refused = _post(pisp, f"{CONSENTS}/{consent_id}/file", content, cc)
    assert refused.status_code == 400, refused.text
    assert refused.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.InvalidFormat"
    assert refused.json()["Errors"][0]["Path"] == path


def test_an_unsigned_upload_is_refused(pisp):
    content = payment_file("10.00", "20.00", "30.00")
    consent_id, cc = _consent(pisp, initiation_of(content))
    headers = {k: v for k, v in _signed(pisp, content, cc).items() if k != "x-jws-signature"}
    refused = pisp.http.post(f"{pisp.base}{CONSENTS}/{consent_id}/file", content=content, headers=headers)
    assert refused.status_code == 400
    assert refused.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Signature.Missing"
    assert _status(pisp, consent_id, cc) == "AwaitingUpload"


@pytest.mark.parametrize("change, path", [
    ({"FileType": "UK.OBIE.pain.001.001.08"}, "Data.Initiation.FileType"),
    ({"NumberOfTransactions": None}, "Data.Initiation.NumberOfTransactions"),
])
def test_a_file_consent_this_bank_cannot_take_is_refused(pisp, change, path):
    initiation = {k: v for k, v in {**initiation_of(payment_file("1.00")), **change}.items() if v is not None}
    cc = pisp.client_credentials("payments")["access_token"]
    refused = _post(pisp, CONSENTS, orjson.dumps({"Data": {"Initiation": initiation}}), cc)
    assert refused.status_code == 400, refused.text
    assert refused.json()["Errors"][0]["Path"] == path
