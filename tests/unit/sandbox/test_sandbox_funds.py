"""Accounts service: Confirmation of Funds (CBPII) answers yes or no against what /balances shows as available."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from support.documents import without

from gateway.sandbox.data import Bank

FUNDS = "/open-banking/v3.1/cbpii/funds-confirmations"


def headers(customer: str = "alice", account: str = "acc-alice-current") -> dict[str, str]:
    return {"x-bank-customer-id": customer, "x-bank-debtor-account-id": account}


def request_body(amount: str = "20.00", currency: str = "GBP") -> dict:
    return {"Data": {"ConsentId": "fcc-001", "Reference": "Purchase01",
                     "InstructedAmount": {"Amount": amount, "Currency": currency}}}


def amount(pence: int) -> str:
    return f"{pence // 100}.{pence % 100:02d}"


def available(client, customer: str, account_id: str) -> int:
    """InterimAvailable as the balances endpoint shows it, in pence."""
    path = f"/open-banking/v3.1/aisp/accounts/{account_id}/balances"
    balances = client.get(path, headers={"x-bank-customer-id": customer}).json()["Data"]["Balance"]
    shown = next(b for b in balances if b["Type"] == "InterimAvailable")
    pence = int(Decimal(shown["Amount"]["Amount"]) * 100)
    return pence if shown["CreditDebitIndicator"] == "Credit" else -pence


def test_request_fixture_is_a_valid_ob_funds_confirmation(assert_ob) -> None:
    assert_ob(request_body(), "cbpii", "OBFundsConfirmation1")


@pytest.mark.parametrize(("customer", "account_id"),
                         [("alice", "acc-alice-current"), ("alice", "acc-alice-card"), ("bob", "acc-bob-savings")])
def test_funds_are_available_up_to_the_available_balance_and_not_a_penny_more(
    accounts_client, assert_ob, customer: str, account_id: str
) -> None:
    limit = available(accounts_client, customer, account_id)
    assert limit > 0
    for pence, expected in ((limit, True), (limit + 1, False), (1, True)):
        response = accounts_client.post(FUNDS, json=request_body(amount(pence)), headers=headers(customer, account_id))
        assert response.status_code == 201
        assert_ob(response.json(), "cbpii", "OBFundsConfirmationResponse1")
        assert response.json()["Data"]["FundsAvailable"] is expected


def test_the_card_limit_counts_as_available(bank: Bank, accounts_client) -> None:
    card = bank.ledger.account("acc-alice-card")
    owed = -bank.ledger.balance(card.account_id)
    assert owed > 0  # the card's balance alone could pay nothing
    within = accounts_client.post(FUNDS, json=request_body(amount(card.credit_limit - owed)),
                                  headers=headers(account="acc-alice-card"))
    assert within.json()["Data"]["FundsAvailable"] is True


def test_the_answer_echoes_the_request_and_says_nothing_of_the_balance(accounts_client) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    response = accounts_client.post(FUNDS, json=request_body("12.34"), headers=headers())
    body = response.json()
    data = body["Data"]
    assert set(data) == {"FundsConfirmationId", "ConsentId", "CreationDateTime", "FundsAvailable", "Reference",
                         "InstructedAmount"}
    assert data["ConsentId"] == "fcc-001" and data["Reference"] == "Purchase01"
    assert data["InstructedAmount"] == {"Amount": "12.34", "Currency": "GBP"}
    assert before <= datetime.fromisoformat(data["CreationDateTime"]) <= datetime.now(UTC) + timedelta(seconds=1)
    assert body["Links"]["Self"] == f"http://bank.test{FUNDS}"
    again = accounts_client.post(FUNDS, json=request_body("12.34"), headers=headers()).json()
    assert again["Data"]["FundsConfirmationId"] != data["FundsConfirmationId"]


def test_a_check_moves_no_money(fresh_bank: Bank, fresh_accounts_client) -> None:
    before = fresh_bank.ledger.entries("acc-alice-current")
    assert fresh_accounts_client.post(FUNDS, json=request_body("50.00"), headers=headers()).status_code == 201
    assert fresh_bank.ledger.entries("acc-alice-current") == before


def test_a_foreign_currency_is_refused(accounts_client, assert_ob) -> None:
    response = accounts_client.post(FUNDS, json=request_body("1.00", "EUR"), headers=headers())
    assert response.status_code == 400
    assert_ob(response.json(), "cbpii", "OBErrorResponse1")
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Field.Invalid"
    assert response.json()["Errors"][0]["Path"] == "Data.InstructedAmount.Currency"


@pytest.mark.parametrize(
    ("request_headers", "status", "code"),
    [
        ({"x-bank-customer-id": "alice"}, 400, "UK.OBIE.Header.Missing"),
        (headers(account="acc-bob-current"), 400, "UK.OBIE.Header.Invalid"),
        (headers(account="acc-nope"), 400, "UK.OBIE.Header.Invalid"),
        ({"x-bank-debtor-account-id": "acc-alice-current"}, 403, "UK.OBIE.Header.Missing"),
    ],
)
def test_the_account_must_be_named_and_the_customers(accounts_client, request_headers: dict, status: int,
                                                     code: str) -> None:
    response = accounts_client.post(FUNDS, json=request_body(), headers=request_headers)
    assert response.status_code == status
    assert response.json()["Errors"][0]["ErrorCode"] == code


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        (request_body("0.00"), "UK.OBIE.Field.Invalid", "Data.InstructedAmount.Amount"),
        (request_body("1.234"), "UK.OBIE.Field.Invalid", "Data.InstructedAmount.Amount"),
        (request_body("-5.00"), "UK.OBIE.Field.Invalid", "Data.InstructedAmount.Amount"),
        (without(request_body(), "Data", "Reference"), "UK.OBIE.Field.Missing", "Data.Reference"),
        (without(request_body(), "Data", "ConsentId"), "UK.OBIE.Field.Missing", "Data.ConsentId"),
        (without(request_body(), "Data", "InstructedAmount", "Currency"), "UK.OBIE.Field.Missing",
         "Data.InstructedAmount.Currency"),
        ([], "UK.OBIE.Resource.InvalidFormat", None),
    ],
)
def test_invalid_requests_are_refused(accounts_client, assert_ob, body: object, code: str, path: str | None) -> None:
    response = accounts_client.post(FUNDS, json=body, headers=headers())
    assert response.status_code == 400
    assert_ob(response.json(), "cbpii", "OBErrorResponse1")
    assert response.json()["Errors"][0]["ErrorCode"] == code
    assert response.json()["Errors"][0].get("Path") == path


def test_a_body_that_is_not_json_is_refused(accounts_client) -> None:
    response = accounts_client.post(FUNDS, content=b"{", headers=headers())
    assert response.status_code == 400
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.InvalidFormat"
