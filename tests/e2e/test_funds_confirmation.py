"""Confirmation of Funds (UK OB v3.1.11 CBPII) through `obgw serve` and the sandbox bank: the consent names its
account, the customer confirms it on the consent page, and each check answers yes or no and nothing about the
balance; revocation, the scope and the consent itself hold as for account access (CONTRACT §10)."""
from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta, timezone

import pytest
from support.forms import only_form
from support.openapi import assert_conforms
from support.tpp import CUSTOMER_PRESENT, Browser, Tpp, redirect_params

pytestmark = pytest.mark.e2e

CBPII = "/open-banking/v3.1/cbpii"
CONSENTS = CBPII + "/funds-confirmation-consents"
CHECKS = CBPII + "/funds-confirmations"
CURRENT = "acc-alice-current"


@pytest.fixture(scope="module")
def cbpii(module_tpp):
    return module_tpp


@pytest.fixture(scope="module")
def current_account(cbpii) -> dict:
    """The current account's identification and available balance, as an AIS Detail consent shows them."""
    token = cbpii.consent_token(["ReadAccountsDetail", "ReadBalances"], accounts=[CURRENT])
    [account] = cbpii.get(f"/open-banking/v3.1/aisp/accounts/{CURRENT}", token).json()["Data"]["Account"]
    balances = cbpii.get(f"/open-banking/v3.1/aisp/accounts/{CURRENT}/balances", token).json()["Data"]["Balance"]
    [available] = [b for b in balances if b["Type"] == "InterimAvailable"]
    sign = 1 if available["CreditDebitIndicator"] == "Credit" else -1
    [identification] = [i for i in account["Account"] if i["SchemeName"] == "UK.OBIE.SortCodeAccountNumber"]
    return {"SchemeName": identification["SchemeName"], "Identification": identification["Identification"],
            "available": sign * float(available["Amount"]["Amount"])}


def _headers(token: dict) -> dict:
    return {"Authorization": f"Bearer {token['access_token']}", **CUSTOMER_PRESENT}


def _check(cbpii: Tpp, token: dict, consent_id: str, amount: str, currency: str = "GBP"):
    body = {"Data": {"ConsentId": consent_id, "Reference": "Purchase01",
                     "InstructedAmount": {"Amount": amount, "Currency": currency}}}
    return cbpii.http.post(cbpii.base + CHECKS, json=body, headers=_headers(token))


@pytest.fixture(scope="module")
def authorised(cbpii, current_account):
    consent = cbpii.funds_consent(current_account)
    pages: list = []
    token = cbpii.authorise_funds(consent["ConsentId"], inspect=pages.append)
    return consent, token, pages[0]


def test_the_consent_page_names_the_account_and_says_only_yes_or_no(authorised, current_account):
    _, _, page = authorised
    form = only_form(page.text)
    assert form.choices.get("account_ids", [CURRENT]) == [CURRENT]  # offered, it is the named account only
    assert "yes or no" in page.text and "balance" in page.text


def test_funds_available_is_true_within_the_balance_and_false_beyond_it(cbpii, authorised, current_account):
    consent, token, _ = authorised
    available = current_account["available"]
    assert available > 2
    yes = _check(cbpii, token, consent["ConsentId"], f"{available - 1:.2f}")
    no = _check(cbpii, token, consent["ConsentId"], f"{available + 1:.2f}")
    for response, expected in ((yes, True), (no, False)):
        assert response.status_code == 201, response.text
        body = response.json()
        assert_conforms(body, "OBFundsConfirmationResponse1", "cbpii")
        assert body["Data"]["FundsAvailable"] is expected
        assert set(body["Data"]) == {"FundsConfirmationId", "ConsentId", "CreationDateTime", "FundsAvailable",
                                     "Reference", "InstructedAmount"}
        assert str(round(available, 2)) not in response.text  # nothing about the balance


def test_the_tpp_reads_the_consent_authorised_with_its_debtor_account(cbpii, authorised, current_account):
    consent, _, _ = authorised
    cc = cbpii.client_credentials("fundsconfirmations")
    read = cbpii.http.get(f"{cbpii.base}{CONSENTS}/{consent['ConsentId']}", headers=_headers(cc))
    assert read.status_code == 200, read.text
    assert_conforms(read.json(), "OBFundsConfirmationConsentResponse1", "cbpii")
    assert read.json()["Data"]["Status"] == "Authorised"
    assert read.json()["Data"]["DebtorAccount"]["Identification"] == current_account["Identification"]


def test_a_check_under_another_consent_id_or_with_an_account_token_is_refused(cbpii, authorised):
    consent, token, _ = authorised
    mismatch = _check(cbpii, token, "fcc-" + secrets.token_hex(8), "1.00")
    assert mismatch.status_code in (400, 403), mismatch.text
    assert_conforms(mismatch.json(), "OBErrorResponse1")
    assert mismatch.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.ConsentMismatch"
    accounts = cbpii.consent_token(["ReadAccountsBasic"], accounts=[CURRENT])
    wrong_scope = _check(cbpii, accounts, consent["ConsentId"], "1.00")
    assert wrong_scope.status_code == 403, wrong_scope.text


def test_a_malformed_check_is_refused_naming_the_field(cbpii, authorised):
    consent, token, _ = authorised
    response = _check(cbpii, token, consent["ConsentId"], "12.345678")
    assert response.status_code == 400, response.text
    assert_conforms(response.json(), "OBErrorResponse1")
    assert response.json()["Errors"][0]["Path"] == "Data.InstructedAmount.Amount"


def test_a_revoked_consent_answers_no_more_checks(cbpii, current_account):
    consent = cbpii.funds_consent(current_account)
    token = cbpii.authorise_funds(consent["ConsentId"])
    assert _check(cbpii, token, consent["ConsentId"], "1.00").status_code == 201
    cc = cbpii.client_credentials("fundsconfirmations")
    deleted = cbpii.http.delete(f"{cbpii.base}{CONSENTS}/{consent['ConsentId']}", headers=_headers(cc))
    assert deleted.status_code == 204, deleted.text
    after = _check(cbpii, token, consent["ConsentId"], "1.00")
    assert after.status_code == 403, after.text
    assert_conforms(after.json(), "OBErrorResponse1")


def test_a_consent_for_an_account_that_is_not_the_customers_is_denied(cbpii):
    consent = cbpii.funds_consent({"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "77100199999999"})
    response, pushed = cbpii.push(consent["ConsentId"], scope="openid fundsconfirmations")
    assert response.status_code == 201, response.text
    browser = Browser(cbpii.base, cbpii.pki)
    try:
        answer = browser.login(browser.open(cbpii.client_id, pushed.request_uri), "alice")
    finally:
        browser.close()
    assert answer.status_code in (302, 303), answer.text
    assert redirect_params(answer)["error"] == "access_denied"


def test_the_dashboard_says_what_a_funds_check_lets_the_app_learn(gateway, pki, authorised):
    consent, _, _ = authorised
    browser = Browser(gateway.base, pki)
    try:
        login = browser.http.get(gateway.base + "/login")
        assert browser.submit(login, {"username": "alice", "password": "alice-pass"}).status_code == 303
        page = browser.http.get(gateway.base + "/consents")
    finally:
        browser.close()
    assert page.status_code == 200
    section = page.text[page.text.index(f'id="{consent["ConsentId"]}"'):]
    assert "enough money" in section.split("</section>")[0] and "never your balance" in section.split("</section>")[0]


def test_an_expired_consent_answers_no_more_checks(cbpii, current_account):
    expires = datetime.now(timezone.utc) + timedelta(seconds=4)
    consent = cbpii.funds_consent(current_account, ExpirationDateTime=expires.isoformat(timespec="seconds"))
    token = cbpii.authorise_funds(consent["ConsentId"])
    assert _check(cbpii, token, consent["ConsentId"], "1.00").status_code == 201
    time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.2)
    after = _check(cbpii, token, consent["ConsentId"], "1.00")
    assert after.status_code == 403, after.text
    assert_conforms(after.json(), "OBErrorResponse1")
