"""Payments service: funds checks on payment and VRP consents, answered from what /balances shows as available.

The gateway passes a payment consent's InstructedAmount on in x-bank-instructed-amount ("<Amount> <Currency>"); an
international one is checked as the payment would debit it: converted at the bank's rate (1 GBP = 1.1484 EUR,
1.2573 USD), with its fee (2.50 GBP in euros, 9.00 GBP in dollars).
"""

from __future__ import annotations

import pytest
from pisp_requests import PISP, balance, headers, international, request
from support.documents import without

from gateway.sandbox.app import create_payments_app
from gateway.sandbox.data import build_bank

DOMESTIC = f"{PISP}/domestic-payment-consents/pdc-1/funds-confirmation"
INTERNATIONAL = f"{PISP}/international-payment-consents/ipc-1/funds-confirmation"
INTERNATIONAL_SCHEDULED = f"{PISP}/international-scheduled-payment-consents/ispc-1/funds-confirmation"
VRP = f"{PISP}/domestic-vrp-consents/vrp-c-1/funds-confirmation"
AMOUNT_HEADER = "x-bank-instructed-amount"


def money(pence: int) -> str:
    return f"{pence // 100}.{pence % 100:02d}"


def check(client, path: str, value: str | None, customer: str = "alice", debtor: str = "acc-alice-current"):
    extra = {} if value is None else {AMOUNT_HEADER: value}
    return client.get(path, headers=headers(customer, debtor) | extra)


def available(accounts, customer: str = "alice", debtor: str = "acc-alice-current") -> int:
    return balance(accounts, debtor, customer, kind="InterimAvailable")


def answered(response, assert_ob) -> bool:
    assert response.status_code == 200, response.text
    assert_ob(response.json(), "pisp", "OBWriteFundsConfirmationResponse1")
    return response.json()["Data"]["FundsAvailableResult"]["FundsAvailable"]


def refused(response, assert_ob, api: str = "pisp", status: int = 400) -> dict:
    assert response.status_code == status, response.text
    assert_ob(response.json(), api, "OBErrorResponse1")
    return response.json()["Errors"][0]


def vrp_request(value: str = "20.00", currency: str = "GBP", consent_id: str = "vrp-c-1", **more: object) -> dict:
    return {"Data": {"ConsentId": consent_id, "Reference": "Sweep 42",
                     "InstructedAmount": {"Amount": value, "Currency": currency}} | more}


# -- payment consents ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("customer", "debtor"), [("alice", "acc-alice-current"), ("bob", "acc-bob-savings")])
def test_a_domestic_consent_is_affordable_up_to_the_available_balance(clocked_payments, clocked_accounts, assert_ob,
                                                                      customer: str, debtor: str) -> None:
    limit = available(clocked_accounts, customer, debtor)
    assert limit > 0
    for pence, expected in ((1, True), (limit, True), (limit + 1, False)):
        response = check(clocked_payments, DOMESTIC, f"{money(pence)} GBP", customer, debtor)
        assert answered(response, assert_ob) is expected, pence


def test_the_answer_is_dated_by_the_bank_and_links_to_itself(clocked_payments, assert_ob, clock) -> None:
    body = check(clocked_payments, DOMESTIC, "25.00 GBP").json()
    assert body == {"Data": {"FundsAvailableResult": {"FundsAvailableDateTime": clock.now.isoformat(),
                                                      "FundsAvailable": True}},
                    "Links": {"Self": f"http://bank.test{DOMESTIC}"}, "Meta": {}}


def test_an_international_amount_is_converted_before_it_is_compared(clocked_payments, clocked_accounts,
                                                                    assert_ob) -> None:
    """More euros than the account holds pounds can be affordable; fewer can be too many once converted."""
    limit = available(clocked_accounts)
    within = limit * 11 // 10  # about 0.96 of the limit in pounds, and the fee
    beyond = limit * 12 // 10  # about 1.04 of it
    for path in (INTERNATIONAL, INTERNATIONAL_SCHEDULED):
        assert answered(check(clocked_payments, path, f"{money(within)} EUR"), assert_ob) is True
        assert answered(check(clocked_payments, path, f"{money(beyond)} EUR"), assert_ob) is False
    assert answered(check(clocked_payments, DOMESTIC, f"{money(within)} GBP"), assert_ob) is False


def test_an_international_check_agrees_with_the_payment_to_the_penny(clock, seed: int, anchor, client_for,
                                                                     assert_ob) -> None:
    """Around the most the account can send in euros, each amount is affordable exactly when paying it succeeds."""
    limit = build_bank(seed, anchor, clock=clock).ledger.available("acc-alice-current")
    most = int((limit - 250) * 1.1484)  # cents of euros the limit buys, less the fee, near enough
    outcomes = []
    for cents in range(most - 3, most + 4):
        client = client_for(create_payments_app(build_bank(seed, anchor, clock=clock)))
        affordable = answered(check(client, INTERNATIONAL, f"{money(cents)} EUR"), assert_ob)
        paid = client.post(f"{PISP}/international-payments", json=request(international(money(cents), "EUR")),
                           headers=headers())
        assert paid.status_code == (201 if affordable else 400), (cents, paid.text)
        outcomes.append(affordable)
    assert True in outcomes and False in outcomes


def test_an_international_amount_in_pounds_leaves_room_for_the_fee(clocked_payments, clocked_accounts,
                                                                  assert_ob) -> None:
    """Which currency the pounds are sent in is the consent's, not the check's: room for the highest fee (9.00)."""
    limit = available(clocked_accounts)
    assert answered(check(clocked_payments, DOMESTIC, f"{money(limit)} GBP"), assert_ob) is True
    assert answered(check(clocked_payments, INTERNATIONAL, f"{money(limit)} GBP"), assert_ob) is False
    assert answered(check(clocked_payments, INTERNATIONAL, f"{money(limit - 900)} GBP"), assert_ob) is True
    assert answered(check(clocked_payments, INTERNATIONAL, f"{money(limit - 899)} GBP"), assert_ob) is False


def test_a_check_moves_no_money(clocked_payments, clocked_accounts) -> None:
    before = available(clocked_accounts)
    for path, value in ((DOMESTIC, "50.00 GBP"), (INTERNATIONAL, "50.00 USD")):
        assert check(clocked_payments, path, value).status_code == 200
    assert clocked_payments.post(VRP, json=vrp_request(), headers=headers()).status_code == 201
    assert available(clocked_accounts) == before


@pytest.mark.parametrize("path", [DOMESTIC, INTERNATIONAL, INTERNATIONAL_SCHEDULED])
def test_the_amount_must_be_passed_on(clocked_payments, assert_ob, path: str) -> None:
    error = refused(check(clocked_payments, path, None), assert_ob)
    assert (error["ErrorCode"], error["Path"]) == ("UK.OBIE.Field.Missing", AMOUNT_HEADER)


@pytest.mark.parametrize("value", ["", "25.00", "25.00GBP", "GBP 25.00", "25.00  GBP", "25.00 gbp", "25.00 GBPX",
                                   "0.00 GBP", "-5.00 GBP", "1.234 GBP", "lots GBP"])
@pytest.mark.parametrize("path", [DOMESTIC, INTERNATIONAL])
def test_a_malformed_amount_is_refused(clocked_payments, assert_ob, path: str, value: str) -> None:
    error = refused(check(clocked_payments, path, value), assert_ob)
    assert (error["ErrorCode"], error["Path"]) == ("UK.OBIE.Field.Invalid", AMOUNT_HEADER)


def test_a_domestic_amount_must_be_in_the_accounts_currency(clocked_payments, assert_ob) -> None:
    error = refused(check(clocked_payments, DOMESTIC, "1.00 EUR"), assert_ob)
    assert error["Path"] == AMOUNT_HEADER


def test_an_international_currency_the_bank_does_not_send_is_refused(clocked_payments, assert_ob) -> None:
    error = refused(check(clocked_payments, INTERNATIONAL, "100.00 JPY"), assert_ob)
    assert error["ErrorCode"] == "UK.OBIE.Unsupported.Currency"


@pytest.mark.parametrize(("request_headers", "status", "code"), [
    ({"x-bank-customer-id": "alice", AMOUNT_HEADER: "1.00 GBP"}, 400, "UK.OBIE.Header.Missing"),
    (headers(debtor="acc-bob-current") | {AMOUNT_HEADER: "1.00 GBP"}, 400, "UK.OBIE.Header.Invalid"),
    ({"x-bank-debtor-account-id": "acc-alice-current", AMOUNT_HEADER: "1.00 GBP"}, 403, "UK.OBIE.Header.Missing"),
])
def test_the_debtor_account_must_be_named_and_the_customers(clocked_payments, assert_ob, request_headers: dict,
                                                            status: int, code: str) -> None:
    for path in (DOMESTIC, INTERNATIONAL):
        error = refused(clocked_payments.get(path, headers=request_headers), assert_ob, status=status)
        assert error["ErrorCode"] == code


# -- VRP consents -------------------------------------------------------------------------------------------------


def test_vrp_request_fixture_is_valid(assert_ob) -> None:
    assert_ob(vrp_request(), "vrp", "OBVRPFundsConfirmationRequest")


def confirm_vrp(client, body: object, path: str = VRP, customer: str = "alice", debtor: str = "acc-alice-current"):
    return client.post(path, json=body, headers=headers(customer, debtor))


def vrp_answer(response, assert_ob) -> dict:
    assert response.status_code == 201, response.text
    assert_ob(response.json(), "vrp", "OBVRPFundsConfirmationResponse")
    return response.json()["Data"]


def test_a_vrp_is_affordable_up_to_the_available_balance(clocked_payments, clocked_accounts, assert_ob) -> None:
    limit = available(clocked_accounts)
    for pence, expected in ((1, "Available"), (limit, "Available"), (limit + 1, "NotAvailable")):
        data = vrp_answer(confirm_vrp(clocked_payments, vrp_request(money(pence))), assert_ob)
        assert data["FundsAvailableResult"]["FundsAvailable"] == expected, pence


def test_a_vrp_answer_echoes_the_request(clocked_payments, assert_ob, clock) -> None:
    response = confirm_vrp(clocked_payments, vrp_request("12.34"))
    data = vrp_answer(response, assert_ob)
    assert data["FundsConfirmationId"]
    assert data == {"FundsConfirmationId": data["FundsConfirmationId"], "ConsentId": "vrp-c-1",
                    "CreationDateTime": clock.now.isoformat(), "Reference": "Sweep 42",
                    "InstructedAmount": {"Amount": "12.34", "Currency": "GBP"},
                    "FundsAvailableResult": {"FundsAvailableDateTime": clock.now.isoformat(),
                                             "FundsAvailable": "Available"}}
    assert response.json()["Links"]["Self"] == f"http://bank.test{VRP}"
    again = vrp_answer(confirm_vrp(clocked_payments, vrp_request("12.34")), assert_ob)
    assert again["FundsConfirmationId"] != data["FundsConfirmationId"]


def test_a_vrp_reference_is_optional(clocked_payments, assert_ob) -> None:
    body = vrp_request()
    del body["Data"]["Reference"]
    assert "Reference" not in vrp_answer(confirm_vrp(clocked_payments, body), assert_ob)


def test_a_vrp_check_is_for_the_consent_of_its_path(clocked_payments, assert_ob) -> None:
    response = confirm_vrp(clocked_payments, vrp_request(consent_id="vrp-c-2"))
    error = refused(response, assert_ob, "vrp")
    assert (error["ErrorCode"], error["Path"]) == ("UK.OBIE.Resource.ConsentMismatch", "Data.ConsentId")


@pytest.mark.parametrize(("body", "code", "path"), [
    (vrp_request("1.00", "EUR"), "UK.OBIE.Field.Invalid", "Data.InstructedAmount.Currency"),
    (vrp_request("0.00"), "UK.OBIE.Field.Invalid", "Data.InstructedAmount.Amount"),
    (without(vrp_request(), "Data", "InstructedAmount"), "UK.OBIE.Field.Missing", "Data.InstructedAmount"),
    (without(vrp_request(), "Data", "ConsentId"), "UK.OBIE.Field.Missing", "Data.ConsentId"),
    ({"Data": []}, "UK.OBIE.Field.Invalid", "Data"),
    ([], "UK.OBIE.Resource.InvalidFormat", None),
])
def test_an_invalid_vrp_check_is_refused(clocked_payments, assert_ob, body: object, code: str,
                                         path: str | None) -> None:
    error = refused(confirm_vrp(clocked_payments, body), assert_ob, "vrp")
    assert (error["ErrorCode"], error.get("Path")) == (code, path)


def test_a_vrp_check_is_for_the_customers_own_account(clocked_payments, assert_ob) -> None:
    error = refused(confirm_vrp(clocked_payments, vrp_request(), debtor="acc-bob-current"), assert_ob, "vrp")
    assert error["ErrorCode"] == "UK.OBIE.Header.Invalid"
