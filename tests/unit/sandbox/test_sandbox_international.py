"""International payments: pounds converted at the bank's rate (or an agreed one), the fee, and what is booked.

The bank's rates are its mid-market table less 1%: 1 GBP = 1.16 EUR -> 1.1484, 1 GBP = 1.27 USD -> 1.2573; its fee is
2.50 GBP for a payment in euros and 9.00 GBP for one in dollars.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pisp_requests import ABROAD, PISP, amount, balance, headers, international, request, transactions, who

from gateway.sandbox.data import Bank

PAYMENTS = f"{PISP}/international-payments"


def pay(client, initiation: dict, consent_id: str = "c-1", customer: str = "alice", debtor: str = "acc-alice-current"):
    return client.post(PAYMENTS, json=request(initiation, consent_id), headers=headers(customer, debtor))


def test_request_fixture_is_a_valid_ob_write_international(assert_ob) -> None:
    agreed = {"RateType": "Agreed", "ExchangeRate": 1.2, "ContractIdentification": "fx-1"}
    assert_ob(request(international(rate=agreed)), "pisp", "OBWriteInternational3")


@pytest.mark.parametrize(("currency", "value", "rate", "debit", "fee"), [
    ("EUR", "100.00", 1.1484, 8708, 250),  # 100 / 1.1484 = 87.0776...
    ("USD", "50.00", 1.2573, 3977, 900),  # 50 / 1.2573 = 39.7677...
])
def test_the_debtor_pays_the_converted_amount_and_the_fee(clocked_payments, clocked_accounts, assert_ob, clock,
                                                          currency: str, value: str, rate: float, debit: int,
                                                          fee: int) -> None:
    before = balance(clocked_accounts)
    response = pay(clocked_payments, international(value, currency, rate={"RateType": "Actual"}))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert_ob(answer, "pisp", "OBWriteInternationalResponse5")
    data = answer["Data"]
    assert data["Status"] == "AcceptedSettlementCompleted"
    assert data["ExchangeRateInformation"] == {"UnitCurrency": "GBP", "ExchangeRate": rate, "RateType": "Actual"}
    assert data["Charges"] == [{"ChargeBearer": "BorneByDebtor", "Type": "SBOX.InternationalPaymentFee",
                                "Amount": {"Amount": f"{fee / 100:.2f}", "Currency": "GBP"}}]
    assert balance(clocked_accounts) == before - debit - fee
    charge, payment = transactions(clocked_accounts)[:2]
    assert payment["Amount"] == {"Amount": f"{debit / 100:.2f}", "Currency": "GBP"}
    assert payment["BankTransactionCode"] == {"Code": "IssuedCreditTransfers", "SubCode": "CrossBorderCreditTransfer"}
    assert payment["CreditorAccount"] == ABROAD and payment["TransactionReference"] == "e2e-3"
    assert payment["CurrencyExchange"] == {
        "SourceCurrency": "GBP", "TargetCurrency": currency, "UnitCurrency": "GBP", "ExchangeRate": rate,
        "QuotationDate": clock.now.isoformat(), "InstructedAmount": amount(value, currency)}
    assert charge["Amount"] == {"Amount": f"{fee / 100:.2f}", "Currency": "GBP"}
    assert charge["CreditDebitIndicator"] == "Debit" and charge["ProprietaryBankTransactionCode"]["Code"] == "CHG"
    assert charge["Balance"]["Amount"]["Amount"] == f"{(before - debit - fee) / 100:.2f}"


def test_without_rate_information_the_bank_uses_its_actual_rate(clocked_payments) -> None:
    data = pay(clocked_payments, international("116.00")).json()["Data"]
    assert data["ExchangeRateInformation"] == {"UnitCurrency": "GBP", "ExchangeRate": 1.1484, "RateType": "Actual"}


def test_an_agreed_rate_is_honoured(clocked_payments, clocked_accounts) -> None:
    before = balance(clocked_accounts)
    agreed = {"RateType": "Agreed", "ExchangeRate": 1.2, "ContractIdentification": "FX-CONTRACT-0042"}
    data = pay(clocked_payments, international("100.00", rate=agreed)).json()["Data"]
    assert data["ExchangeRateInformation"] == {"UnitCurrency": "GBP"} | agreed
    assert balance(clocked_accounts) == before - 8333 - 250  # 100 / 1.2 = 83.33
    payment = transactions(clocked_accounts)[1]
    assert payment["CurrencyExchange"]["ExchangeRate"] == 1.2
    assert payment["CurrencyExchange"]["ContractIdentification"] == "FX-CONTRACT-0042"


def test_an_indicative_rate_says_until_when(clocked_payments, clock) -> None:
    data = pay(clocked_payments, international(rate={"RateType": "Indicative"})).json()["Data"]
    assert data["ExchangeRateInformation"] == {
        "UnitCurrency": "GBP", "ExchangeRate": 1.1484, "RateType": "Indicative",
        "ExpirationDateTime": (clock.now + timedelta(minutes=30)).isoformat()}


def test_an_amount_in_pounds_is_sent_as_it_is(clocked_payments, clocked_accounts) -> None:
    before = balance(clocked_accounts)
    initiation = international() | {"InstructedAmount": amount("100.00", "GBP")}
    assert pay(clocked_payments, initiation).status_code == 201
    assert balance(clocked_accounts) == before - 10000 - 250


def test_when_the_creditor_bears_the_charges_the_debtor_pays_no_fee(clocked_payments, clocked_accounts) -> None:
    before = balance(clocked_accounts)
    data = pay(clocked_payments, international(ChargeBearer="BorneByCreditor")).json()["Data"]
    assert data["Charges"][0]["ChargeBearer"] == "BorneByCreditor"
    assert balance(clocked_accounts) == before - 8708
    assert transactions(clocked_accounts)[0]["ProprietaryBankTransactionCode"]["Code"] == "IPO"


def test_the_fee_counts_towards_the_funds(clocked_bank: Bank, clocked_payments, assert_ob) -> None:
    """Bob's available funds can pay the amount, but not that and the fee: refused, nothing booked."""
    ledger = clocked_bank.ledger
    pounds = ledger.available("acc-bob-current") - 250 + 1  # one penny short once the fee is added
    initiation = international() | {"InstructedAmount": amount(f"{pounds // 100}.{pounds % 100:02d}", "GBP")}
    booked = ledger.balance("acc-bob-current")
    response = pay(clocked_payments, initiation, customer="bob", debtor="acc-bob-current")
    assert response.status_code == 400, response.text
    assert_ob(response.json(), "pisp", "OBErrorResponse1")
    assert response.json()["Errors"][0] == {"ErrorCode": "SBOX.InsufficientFunds", "Message": "insufficient funds",
                                           "Path": "Data.Initiation.InstructedAmount.Amount"}
    assert ledger.balance("acc-bob-current") == booked
    borne_by_creditor = initiation | {"ChargeBearer": "BorneByCreditor"}
    paid = pay(clocked_payments, borne_by_creditor, "c-2", customer="bob", debtor="acc-bob-current")
    assert paid.status_code == 201, paid.text
    assert ledger.balance("acc-bob-current") == booked - pounds


@pytest.mark.parametrize(("change", "code", "path"), [
    ({"CurrencyOfTransfer": "JPY", "InstructedAmount": amount("100.00", "JPY")}, "UK.OBIE.Unsupported.Currency",
     "Data.Initiation.CurrencyOfTransfer"),
    ({"InstructedAmount": amount("100.00", "USD")}, "UK.OBIE.Unsupported.Currency",
     "Data.Initiation.InstructedAmount.Currency"),
    ({"ExchangeRateInformation": {"UnitCurrency": "GBP", "RateType": "Agreed", "ExchangeRate": 1.2}},
     "UK.OBIE.Field.Missing", "Data.Initiation.ExchangeRateInformation.ContractIdentification"),
    ({"ExchangeRateInformation": {"UnitCurrency": "GBP", "RateType": "Agreed", "ContractIdentification": "x"}},
     "UK.OBIE.Field.Missing", "Data.Initiation.ExchangeRateInformation.ExchangeRate"),
    ({"ExchangeRateInformation": {"UnitCurrency": "GBP", "RateType": "Agreed", "ExchangeRate": -1,
                                  "ContractIdentification": "x"}},
     "UK.OBIE.Field.Invalid", "Data.Initiation.ExchangeRateInformation.ExchangeRate"),
    ({"ExchangeRateInformation": {"UnitCurrency": "GBP", "RateType": "Actual", "ExchangeRate": 1.5}},
     "UK.OBIE.Field.Unexpected", "Data.Initiation.ExchangeRateInformation.ExchangeRate"),
    ({"ExchangeRateInformation": {"UnitCurrency": "EUR", "RateType": "Actual"}}, "UK.OBIE.Field.Invalid",
     "Data.Initiation.ExchangeRateInformation.UnitCurrency"),
    ({"CurrencyOfTransfer": None}, "UK.OBIE.Field.Missing", "Data.Initiation.CurrencyOfTransfer"),
])
def test_payments_the_bank_cannot_make_are_refused(clocked_payments, clocked_bank: Bank, assert_ob, change: dict,
                                                   code: str, path: str) -> None:
    before = clocked_bank.ledger.balance("acc-alice-current")
    initiation = {key: value for key, value in (international() | change).items() if value is not None}
    response = pay(clocked_payments, initiation)
    assert response.status_code == 400
    assert_ob(response.json(), "pisp", "OBErrorResponse1")
    assert (response.json()["Errors"][0]["ErrorCode"], response.json()["Errors"][0]["Path"]) == (code, path)
    assert clocked_bank.ledger.balance("acc-alice-current") == before


def test_read_back_with_its_details_by_its_customer_only(clocked_payments, assert_ob, clock) -> None:
    created = pay(clocked_payments, international()).json()
    path = f"{PAYMENTS}/{created['Data']['InternationalPaymentId']}"
    assert clocked_payments.get(path, headers=who()).json() == created
    assert clocked_payments.get(path, headers=who("bob")).status_code == 404
    details = clocked_payments.get(f"{path}/payment-details", headers=who()).json()
    assert_ob(details, "pisp", "OBWritePaymentDetailsResponse1")
    assert [(s["Status"], s["StatusUpdateDateTime"]) for s in details["Data"]["PaymentStatus"]] == [
        ("Received", clock.now.isoformat()), ("AcceptedSettlementCompleted", clock.now.isoformat())]
    assert clocked_payments.get(f"{path}/payment-details", headers=who("bob")).status_code == 404


def test_the_creation_time_is_the_banks(clocked_payments, clock) -> None:
    clock.now = datetime.fromisoformat("2026-06-03T14:15:16+00:00")
    assert pay(clocked_payments, international()).json()["Data"]["CreationDateTime"] == "2026-06-03T14:15:16+00:00"
