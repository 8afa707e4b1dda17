"""Every payment kind of the UK OB v3.1.11 Payment Initiation API through `obgw serve` (2 workers) and the sandbox
bank, with tokens from the real flow: the consent (its schema, this bank's rules), the customer's consent page in
plain words, one payment exactly the consent's, a replay answered the same, a mismatch refused, the consent
Consumed, the payment and its details read back, and every answer signed by the gateway (verified with its JWKS)."""
from __future__ import annotations

import secrets

import httpx
import jwt
import orjson
import pytest
from support.gateway import client_context
from support.openapi import assert_conforms
from support.payment_data import CREDITOR, KINDS, PISP, vrp_control
from support.tpp import CUSTOMER_PRESENT, Tpp

from gateway.crypto import b64url_decode
from gateway.payments.jws import sign_detached

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def pisp(module_tpp):
    return module_tpp


@pytest.fixture(scope="module")
def gateway_keys(gateway, pki) -> dict:
    with httpx.Client(verify=client_context(pki / "ca.pem")) as client:
        jwks_uri = client.get(gateway.base + "/.well-known/oauth-authorization-server").json()["jwks_uri"]
        return {key["kid"]: key for key in client.get(jwks_uri).json()["keys"]}


def assert_signed_by_gateway(response: httpx.Response, keys: dict, issuer: str) -> None:
    """The answer's x-jws-signature is a detached JWS over its body by a key of the gateway's JWKS."""
    encoded_header, payload, signature = response.headers["x-jws-signature"].split(".")
    assert payload == ""
    header = orjson.loads(b64url_decode(encoded_header))
    assert header["http://openbanking.org.uk/iss"] == issuer and header["alg"] == "ES256"
    key = jwt.algorithms.ECAlgorithm.from_jwk(orjson.dumps(keys[header["kid"]]).decode())
    signing_input = f"{encoded_header}.{jwt.utils.base64url_encode(response.content).decode()}".encode()
    assert jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256).verify(
        signing_input, key, b64url_decode(signature))


def _post(pisp: Tpp, path: str, body: dict, token: str, key: str | None = None) -> httpx.Response:
    content = orjson.dumps(body)
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json", **CUSTOMER_PRESENT,
               "x-idempotency-key": key or secrets.token_hex(8),
               "x-jws-signature": sign_detached(content, pisp.jwk, pisp.client_id)}
    return pisp.http.post(pisp.base + path, content=content, headers=headers)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_payment_kind_is_consented_paid_once_and_signed(gateway, pisp, gateway_keys, kind):
    consents, payments, consent_schema, payment_schema, extra, initiation_of = KINDS[kind]
    initiation = initiation_of()
    cc = pisp.client_credentials("payments")["access_token"]
    created = _post(pisp, f"{PISP}/{consents}", {"Data": {**extra, "Initiation": initiation}, "Risk": {}}, cc)
    assert created.status_code == 201, created.text
    assert_conforms(created.json(), consent_schema, "pisp")
    assert_signed_by_gateway(created, gateway_keys, gateway.base)
    consent_id = created.json()["Data"]["ConsentId"]

    pages: list = []
    token = pisp.authorise_payment(consent_id, inspect=pages.append)["access_token"]
    payee = initiation["CreditorAccount"]["Name"]
    assert payee in pages[0].text

    other = {**initiation, "CreditorAccount": {**initiation["CreditorAccount"], "Name": "Someone Else"}}
    mismatch = _post(pisp, f"{PISP}/{payments}", {"Data": {"ConsentId": consent_id, "Initiation": other},
                                                   "Risk": {}}, token)
    assert mismatch.status_code == 400, mismatch.text
    assert mismatch.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.ConsentMismatch"

    key = secrets.token_hex(8)
    body = {"Data": {"ConsentId": consent_id, "Initiation": initiation}, "Risk": {}}
    paid = _post(pisp, f"{PISP}/{payments}", body, token, key)
    assert paid.status_code == 201, paid.text
    assert_conforms(paid.json(), payment_schema, "pisp")
    assert_signed_by_gateway(paid, gateway_keys, gateway.base)
    again = _post(pisp, f"{PISP}/{payments}", body, token, key)
    assert (again.status_code, again.content) == (201, paid.content)
    assert _post(pisp, f"{PISP}/{payments}", body, token).status_code in (400, 403)  # the consent is used up

    read = pisp.http.get(f"{pisp.base}{PISP}/{consents}/{consent_id}", headers={"Authorization": f"Bearer {cc}"})
    assert read.json()["Data"]["Status"] == "Consumed"
    payment_id = next(v for k, v in paid.json()["Data"].items() if k.endswith("Id") and k != "ConsentId")
    pisp.read_payment(f"{PISP}/{payments}/{payment_id}", token, payment_schema, "OBWritePaymentDetailsResponse1")
    assert_signed_by_gateway(pisp.get(f"{PISP}/{payments}/{payment_id}", token), gateway_keys, gateway.base)


def test_a_standing_order_consent_page_says_how_often_and_how_many(pisp):
    consents, _, _, _, extra, initiation_of = KINDS["domestic-standing-order"]
    cc = pisp.client_credentials("payments")["access_token"]
    created = _post(pisp, f"{PISP}/{consents}", {"Data": {**extra, "Initiation": initiation_of()}, "Risk": {}}, cc)
    pages: list = []
    pisp.authorise_payment(created.json()["Data"]["ConsentId"], inspect=pages.append)
    assert "£25.00 every month from" in pages[0].text and "12 payments" in pages[0].text


@pytest.mark.parametrize("kind, field, value", [
    ("domestic", "InstructedAmount", {"Amount": "1.00", "Currency": "EUR"}),
    ("international", "CurrencyOfTransfer", "JPY"),
    ("domestic-scheduled", "RequestedExecutionDateTime", "2020-01-01T00:00:00+00:00"),
])
def test_a_consent_this_bank_cannot_honour_is_refused_naming_the_field(pisp, kind, field, value):
    consents, _, _, _, extra, initiation_of = KINDS[kind]
    cc = pisp.client_credentials("payments")["access_token"]
    refused = _post(pisp, f"{PISP}/{consents}",
                    {"Data": {**extra, "Initiation": {**initiation_of(), field: value}}, "Risk": {}}, cc)
    assert refused.status_code == 400, refused.text
    assert_conforms(refused.json(), "OBErrorResponse1")
    assert refused.json()["Errors"][0]["Path"].startswith(f"Data.Initiation.{field}")


@pytest.mark.parametrize("kind, resource, records", [
    ("domestic-scheduled", "scheduled-payments", "ScheduledPayment"),
    ("domestic-standing-order", "standing-orders", "StandingOrder"),
])
def test_a_scheduled_payment_or_standing_order_shows_in_the_debtors_account_information(pisp, kind, resource,
                                                                                         records):
    consents, payments, _, _, extra, initiation_of = KINDS[kind]
    initiation = initiation_of()
    cc = pisp.client_credentials("payments")["access_token"]
    created = _post(pisp, f"{PISP}/{consents}", {"Data": {**extra, "Initiation": initiation}, "Risk": {}}, cc)
    consent_id = created.json()["Data"]["ConsentId"]
    token = pisp.authorise_payment(consent_id, debtor="acc-alice-current")["access_token"]
    paid = _post(pisp, f"{PISP}/{payments}", {"Data": {"ConsentId": consent_id, "Initiation": initiation},
                                              "Risk": {}}, token)
    assert paid.status_code == 201, paid.text
    reader = pisp.consent_token(["ReadAccountsBasic", "ReadScheduledPaymentsDetail", "ReadStandingOrdersDetail"],
                                accounts=["acc-alice-current"])
    listed = pisp.get(f"/open-banking/v3.1/aisp/accounts/acc-alice-current/{resource}", reader)
    assert listed.status_code == 200, listed.text
    creditors = [record.get("CreditorAccount", {}).get("Identification") for record in listed.json()["Data"][records]]
    assert initiation["CreditorAccount"]["Identification"] in creditors


def _authorised(pisp: Tpp, kind: str, **changes) -> tuple[str, str, dict]:
    """A consent of `kind` (its usual Initiation with `changes`), authorised by alice from her current account:
    (consent id, access token, the Initiation)."""
    consents, _, _, _, extra, initiation_of = KINDS[kind]
    initiation = {**initiation_of(), **changes}
    cc = pisp.client_credentials("payments")["access_token"]
    created = _post(pisp, f"{PISP}/{consents}", {"Data": {**extra, "Initiation": initiation}, "Risk": {}}, cc)
    assert created.status_code == 201, created.text
    consent_id = created.json()["Data"]["ConsentId"]
    return consent_id, pisp.authorise_payment(consent_id, debtor="acc-alice-current")["access_token"], initiation


@pytest.mark.parametrize("kind, amount, available", [
    ("domestic", {"Amount": "12.34", "Currency": "GBP"}, True),
    ("domestic", {"Amount": "9999999.00", "Currency": "GBP"}, False),
    ("international", {"Amount": "100.00", "Currency": "EUR"}, True),
    ("international-scheduled", {"Amount": "9999999.00", "Currency": "USD"}, False),
])
def test_a_payment_consents_funds_confirmation_answers_for_the_authorised_amount(pisp, gateway_keys, gateway, kind,
                                                                                 amount, available):
    consents = KINDS[kind][0]
    consent_id, token, _ = _authorised(pisp, kind, InstructedAmount=amount)
    checked = pisp.get(f"{PISP}/{consents}/{consent_id}/funds-confirmation", token)
    assert checked.status_code == 200, checked.text
    assert_conforms(checked.json(), "OBWriteFundsConfirmationResponse1", "pisp")
    assert checked.json()["Data"]["FundsAvailableResult"]["FundsAvailable"] is available
    assert checked.json()["Links"]["Self"].startswith(gateway.base)
    assert_signed_by_gateway(checked, gateway_keys, gateway.base)


def test_a_funds_confirmation_is_only_of_the_tokens_own_consent(pisp):
    mine, token, _ = _authorised(pisp, "domestic")
    other, _, _ = _authorised(pisp, "domestic")
    refused = pisp.get(f"{PISP}/domestic-payment-consents/{other}/funds-confirmation", token)
    assert refused.status_code == 400, refused.text
    assert refused.json()["Errors"][0] == {"ErrorCode": "UK.OBIE.Resource.ConsentMismatch", "Path": "ConsentId",
                                           "Message": refused.json()["Errors"][0]["Message"]}
    assert pisp.get(f"{PISP}/domestic-payment-consents/{mine}/funds-confirmation", token).status_code == 200


def test_a_vrp_consents_funds_confirmation_names_its_amount(pisp):
    cc = pisp.client_credentials("payments")["access_token"]
    control = vrp_control()
    created = _post(pisp, f"{PISP}/domestic-vrp-consents",
                    {"Data": {"ControlParameters": control, "Initiation": {"CreditorAccount": CREDITOR}}, "Risk": {}},
                    cc)
    assert created.status_code == 201, created.text
    consent_id = created.json()["Data"]["ConsentId"]
    token = pisp.authorise_payment(consent_id, debtor="acc-alice-current")["access_token"]
    for amount, available in (("25.00", "Available"), ("9999999.00", "NotAvailable")):
        body = {"Data": {"ConsentId": consent_id, "Reference": "SWEEP",
                         "InstructedAmount": {"Amount": amount, "Currency": "GBP"}}}
        checked = _post(pisp, f"{PISP}/domestic-vrp-consents/{consent_id}/funds-confirmation", body, token)
        assert checked.status_code == 201, checked.text
        assert_conforms(checked.json(), "OBVRPFundsConfirmationResponse", "vrp")
        assert checked.json()["Data"]["FundsAvailableResult"]["FundsAvailable"] == available
        assert checked.json()["Data"]["ConsentId"] == consent_id


def test_a_token_reads_only_its_own_consents_payment_and_its_details(pisp):
    """payment-details carry no ConsentId: the bank, told the token's consent, answers for that consent's payment
    only (before x-bank-consent-id, a token of one consent read the details of the customer's other payments)."""
    payments = KINDS["domestic"][1]
    paid = {}
    for name in ("mine", "theirs"):
        consent_id, token, initiation = _authorised(pisp, "domestic")
        body = {"Data": {"ConsentId": consent_id, "Initiation": initiation}, "Risk": {}}
        answer = _post(pisp, f"{PISP}/{payments}", body, token)
        assert answer.status_code == 201, answer.text
        paid[name] = (answer.json()["Data"]["DomesticPaymentId"], token)
    theirs, (_, token) = paid["theirs"][0], paid["mine"]
    for path in (f"{PISP}/{payments}/{theirs}", f"{PISP}/{payments}/{theirs}/payment-details"):
        refused = pisp.get(path, token)
        assert refused.status_code in (403, 404), refused.text  # the gateway's refusal or the bank's
        assert refused.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.NotFound"
    assert pisp.get(f"{PISP}/{payments}/{paid['mine'][0]}/payment-details", token).status_code == 200
