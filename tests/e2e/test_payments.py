"""Domestic payments through `obgw serve --workers 2` in front of the sandbox bank: consented, signed,
idempotent, paid once (checked in the bank's own ledger), answers valid against the v3.1.11 schemas."""
from __future__ import annotations

import concurrent.futures
import copy
import json
import secrets

import httpx
import pytest
from support.forms import only_form
from support.gateway import bank_gateway, client_context
from support.openapi import assert_conforms
from support.tpp import PAYMENT_CONSENTS, PAYMENTS, Browser, Tpp, domestic_initiation

pytestmark = pytest.mark.e2e

CONSENTS = PAYMENT_CONSENTS
DEBTOR = "acc-alice-current"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, ledger):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, ledger[0])
    yield gw
    assert gw.stop() == 0


def _payments_made(ledger) -> int:
    state = ledger[1]
    return sum(1 for line in state.read_text().splitlines() if line.strip()) if state.exists() else 0


class Payer:
    """tpp-demo making payments (support.tpp's payment calls), checking what the customer is shown."""

    def __init__(self, gateway, pki) -> None:
        self.tpp = Tpp(gateway.base, pki, "tpp-demo")
        self.base, self.pki = gateway.base, pki
        self.consent, self.pay = self.tpp.payment_consent, self.tpp.pay

    def authorised_token(self, initiation: dict) -> tuple[str, dict]:
        consent = self.consent(initiation)
        assert consent.status_code == 201, consent.text
        assert_conforms(consent.json(), "OBWriteDomesticConsentResponse5", "pisp")
        consent_id = consent.json()["Data"]["ConsentId"]

        def shows_the_payment(page) -> None:
            amount = initiation["InstructedAmount"]["Amount"]
            assert "ACME Utilities" in page.text and f"£{amount}" in page.text and "INV-0042" in page.text

        return consent_id, self.tpp.authorise_payment(consent_id, "alice", DEBTOR, inspect=shows_the_payment)

    def close(self) -> None:
        self.tpp.close()


@pytest.fixture
def payer(gateway, pki):
    p = Payer(gateway, pki)
    yield p
    p.close()


def _consent_status(payer: Payer, consent_id: str) -> str:
    cc = payer.tpp.client_credentials("payments")
    return payer.tpp.get(f"{CONSENTS}/{consent_id}", cc).json()["Data"]["Status"]


def test_the_whole_payment_flow_pays_once_and_consumes_the_consent(gateway, payer, ledger):
    before = _payments_made(ledger)
    initiation = domestic_initiation()
    consent_id, token = payer.authorised_token(initiation)
    paid = payer.pay(token, consent_id, initiation)
    assert paid.status_code == 201, paid.text
    assert_conforms(paid.json(), "OBWriteDomesticResponse5", "pisp")
    payment_id = paid.json()["Data"]["DomesticPaymentId"]
    assert _payments_made(ledger) == before + 1
    assert _consent_status(payer, consent_id) == "Consumed"
    read = payer.tpp.get(f"{PAYMENTS}/{payment_id}", token)
    assert read.status_code == 200 and read.json()["Data"]["ConsentId"] == consent_id
    assert_conforms(read.json(), "OBWriteDomesticResponse5", "pisp")
    again = payer.pay(token, consent_id, initiation)           # a new key: a second payment is refused
    assert again.status_code == 403 and again.json()["Errors"][0]["ErrorCode"] == \
        "UK.OBIE.Resource.InvalidConsentStatus"
    assert _payments_made(ledger) == before + 1
    records = [r for r in gateway.audit("--consent", consent_id)]
    assert records and all("12.34" not in json.dumps(r) and "08080021325698" not in json.dumps(r) for r in records)


def test_a_payment_that_is_not_the_consented_one_is_refused(gateway, payer, ledger):
    before = _payments_made(ledger)
    initiation = domestic_initiation()
    consent_id, token = payer.authorised_token(initiation)
    other = copy.deepcopy(initiation)
    other["InstructedAmount"]["Amount"] = "99.99"
    refused = payer.pay(token, consent_id, other)
    assert refused.status_code == 400 and refused.json()["Errors"][0]["ErrorCode"] == \
        "UK.OBIE.Resource.ConsentMismatch"
    assert_conforms(refused.json(), "OBErrorResponse1", "pisp")
    assert _payments_made(ledger) == before and _consent_status(payer, consent_id) == "Authorised"
    assert payer.pay(token, consent_id, initiation).status_code == 201  # the right one still goes through


def test_insufficient_funds_is_a_clean_rejection_that_leaves_the_consent(gateway, payer, ledger):
    before = _payments_made(ledger)
    initiation = domestic_initiation("9999999.00")
    consent_id, token = payer.authorised_token(initiation)
    refused = payer.pay(token, consent_id, initiation)
    # The bank says SBOX.InsufficientFunds (v3.1.11 lists no funds code): the TPP sees it under obgw's namespace.
    assert refused.status_code == 400 and refused.json()["Errors"][0]["ErrorCode"] == \
        "OBGW.Bank.SBOX.InsufficientFunds"
    assert_conforms(refused.json(), "OBErrorResponse1", "pisp")
    assert _payments_made(ledger) == before and _consent_status(payer, consent_id) == "Authorised"


def test_the_same_payment_retried_five_times_is_one_payment(gateway, payer, ledger):
    before = _payments_made(ledger)
    initiation = domestic_initiation()
    consent_id, token = payer.authorised_token(initiation)
    key = secrets.token_hex(8)
    answers = [payer.pay(token, consent_id, initiation, key=key) for _ in range(5)]
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["Data"]["DomesticPaymentId"] for a in answers}) == 1
    assert len({a.content for a in answers}) == 1                   # the original answer, byte for byte
    assert _payments_made(ledger) == before + 1
    changed = payer.pay(token, consent_id, domestic_initiation(), key=key)  # the key, with another body
    assert changed.status_code == 400 and changed.json()["Errors"][0]["Path"] == "x-idempotency-key"


def test_twenty_identical_requests_at_once_on_two_workers_make_one_payment(gateway, payer, ledger, pki):
    before = _payments_made(ledger)
    initiation = domestic_initiation()
    consent_id, token = payer.authorised_token(initiation)
    key = secrets.token_hex(8)
    context = client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")

    def one(_):
        with httpx.Client(verify=context, timeout=30) as http:  # a new connection each: both workers serve
            return payer.pay(token, consent_id, initiation, key=key, http=http)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one, range(20)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers if a.status_code != 201]
    assert len({a.json()["Data"]["DomesticPaymentId"] for a in answers}) == 1
    assert _payments_made(ledger) == before + 1
    chains = {r["chain"] for r in gateway.audit("--consent", consent_id) if r["route"] == PAYMENTS}
    assert len(chains) == 2  # both workers answered


@pytest.mark.parametrize("case, code", [("missing", "UK.OBIE.Signature.Missing"),
                                        ("other body", "UK.OBIE.Signature.Invalid")])
def test_a_payment_without_a_good_signature_is_refused(gateway, payer, ledger, case, code):
    before = _payments_made(ledger)
    initiation = domestic_initiation()
    consent_id, token = payer.authorised_token(initiation)
    if case == "missing":
        refused = payer.pay(token, consent_id, initiation, signed=False)
    else:
        refused = payer.pay(token, consent_id, initiation, sign_body=b'{"Data":{}}')
    assert refused.status_code == 400 and refused.json()["Errors"][0]["ErrorCode"] == code
    assert _payments_made(ledger) == before and _consent_status(payer, consent_id) == "Authorised"


def test_a_payment_consent_needs_an_idempotency_key_and_a_validdomestic_initiation(gateway, payer):
    missing = payer.consent(domestic_initiation(), key=False)
    assert missing.status_code == 400 and missing.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Header.Missing"
    bad = domestic_initiation()
    bad["InstructedAmount"]["Amount"] = "12,34"
    invalid = payer.consent(bad)
    assert invalid.status_code == 400
    assert invalid.json()["Errors"][0]["Path"] == "Data.Initiation.InstructedAmount.Amount"
    key, initiation = secrets.token_hex(8), domestic_initiation()
    first, second = payer.consent(initiation, key=key), payer.consent(initiation, key=key)
    assert first.status_code == second.status_code == 201 and first.content == second.content  # one consent


def test_a_payment_consent_must_be_signed(gateway, payer):
    refused = payer.consent(domestic_initiation(), signed=False)
    assert refused.status_code == 400 and refused.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Signature.Missing"


def test_a_replay_under_another_consent_is_not_the_first_answer(gateway, payer, ledger):
    first_initiation, second_initiation = domestic_initiation(), domestic_initiation()
    first_id, first_token = payer.authorised_token(first_initiation)
    second_id, second_token = payer.authorised_token(second_initiation)
    key = secrets.token_hex(8)
    assert payer.pay(first_token, first_id, first_initiation, key=key).status_code == 201
    # The second consent's token, the first payment's body and key: refused, not answered with the first payment.
    replayed = payer.pay(second_token, first_id, first_initiation, key=key)
    assert replayed.status_code == 400 and replayed.json()["Errors"][0]["ErrorCode"] == \
        "UK.OBIE.Resource.ConsentMismatch"


def test_a_payment_that_names_its_debtor_account_offers_only_that_account(gateway, payer, ledger):
    # The savings account's number, from the bank itself (the gateway would not show it to this TPP).
    accounts = httpx.get(ledger[0][0] + "/open-banking/v3.1/aisp/accounts", headers={"x-bank-customer-id": "alice"},
                         timeout=5).json()["Data"]["Account"]
    [savings] = [a["Account"][0] for a in accounts if a["AccountId"] == "acc-alice-savings"]
    initiation = {**domestic_initiation(), "DebtorAccount": {"SchemeName": savings["SchemeName"],
                                                     "Identification": savings["Identification"]}}
    consent = payer.consent(initiation)
    assert consent.status_code == 201, consent.text
    response, pushed = payer.tpp.push(consent.json()["Data"]["ConsentId"], scope="openid payments")
    browser = Browser(payer.base, payer.pki)
    try:
        page = browser.login(browser.open(payer.tpp.client_id, pushed.request_uri), "alice")
        assert only_form(page.text).choices["account_ids"] == ["acc-alice-savings"]
        wrong = browser.submit(page, {"account_ids": DEBTOR, "decision": "approve"})
        assert wrong.status_code == 400  # not offered, so not accepted
    finally:
        browser.close()
