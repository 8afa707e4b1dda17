"""Standing orders, domestic and international: set up at once (InitiationCompleted), listed among the account's
standing orders with their frequency, amounts and dates, and each instalment paid when the bank's clock reaches it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pisp_requests import (
    ABROAD,
    CREDITOR,
    PISP,
    amount,
    balance,
    headers,
    international_standing_order,
    records,
    request,
    signed,
    standing_order,
    transactions,
    who,
)

from gateway.sandbox.data import Bank

DOMESTIC = f"{PISP}/domestic-standing-orders"
INTERNATIONAL = f"{PISP}/international-standing-orders"
FIRST = datetime.fromisoformat("2026-06-05T08:00:00+00:00")  # three days after the clock's start
THREE = {"Frequency": "IntrvlMnthDay:01:15", "NumberOfPayments": "3", "RecurringPaymentAmount": amount("30.00"),
         "FinalPaymentAmount": amount("35.00")}
THREE_DATES = ["2026-06-05T08:00:00+00:00", "2026-06-15T08:00:00+00:00", "2026-07-15T08:00:00+00:00"]


def set_up(client, initiation: dict, path: str = DOMESTIC, consent_id: str = "c-1", debtor: str = "acc-alice-current"):
    return client.post(path, json=request(initiation, consent_id), headers=headers(debtor=debtor))


def listed(accounts, order_id: str, account_id: str = "acc-alice-current") -> dict | None:
    answer = records(accounts, "standing-orders", account_id)
    return next((r for r in answer["Data"]["StandingOrder"] if r["StandingOrderId"] == order_id), None)


def test_request_fixtures_are_valid(assert_ob) -> None:
    assert_ob(request(standing_order(FIRST, **THREE)), "pisp", "OBWriteDomesticStandingOrder3")
    assert_ob(request(international_standing_order(FIRST)), "pisp", "OBWriteInternationalStandingOrder4")


def test_a_standing_order_is_set_up_and_listed(clocked_payments, clocked_accounts, assert_ob, clock) -> None:
    before = balance(clocked_accounts)
    response = set_up(clocked_payments, standing_order(FIRST, "25.00", **THREE))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert_ob(answer, "pisp", "OBWriteDomesticStandingOrderResponse6")
    data = answer["Data"]
    assert (data["Status"], data["StatusUpdateDateTime"]) == ("InitiationCompleted", clock.now.isoformat())
    assert balance(clocked_accounts) == before  # the first payment is three days off

    assert_ob(records(clocked_accounts, "standing-orders"), "aisp", "OBReadStandingOrder6")
    assert listed(clocked_accounts, data["DomesticStandingOrderId"]) == {
        "AccountId": "acc-alice-current", "StandingOrderId": data["DomesticStandingOrderId"],
        "Frequency": "IntrvlMnthDay:01:15", "Reference": "GYM", "FirstPaymentDateTime": THREE_DATES[0],
        "NextPaymentDateTime": THREE_DATES[0], "FinalPaymentDateTime": THREE_DATES[2], "NumberOfPayments": "3",
        "StandingOrderStatusCode": "Active", "FirstPaymentAmount": amount("25.00"),
        "NextPaymentAmount": amount("25.00"), "FinalPaymentAmount": amount("35.00"), "CreditorAccount": CREDITOR}
    assert listed(clocked_accounts, data["DomesticStandingOrderId"], "acc-alice-savings") is None


def test_each_instalment_is_paid_on_its_day(clocked_payments, clocked_accounts, assert_ob, clock) -> None:
    created = set_up(clocked_payments, standing_order(FIRST, "25.00", **THREE)).json()
    order_id = created["Data"]["DomesticStandingOrderId"]
    before = balance(clocked_accounts)

    clock.now = datetime.fromisoformat("2026-06-20T12:00:00+00:00")
    assert balance(clocked_accounts) == before - 2500 - 3000
    record = listed(clocked_accounts, order_id)
    assert (record["LastPaymentDateTime"], record["LastPaymentAmount"]) == (THREE_DATES[1], amount("30.00"))
    assert (record["NextPaymentDateTime"], record["NextPaymentAmount"]) == (THREE_DATES[2], amount("35.00"))

    clock.now = datetime.fromisoformat("2026-08-01T00:00:00+00:00")
    assert balance(clocked_accounts) == before - 2500 - 3000 - 3500
    paid = [t for t in transactions(clocked_accounts) if t["ProprietaryBankTransactionCode"]["Code"] == "SO"
            and t["CreditorAccount"] == CREDITOR]
    assert [(t["BookingDateTime"], signed(t)) for t in reversed(paid)] == list(zip(THREE_DATES, [-2500, -3000, -3500]))
    assert paid[0]["BankTransactionCode"] == {"Code": "IssuedCreditTransfers", "SubCode": "StandingOrder"}
    assert paid[0]["TransactionInformation"] == "ACME Ltd GYM"
    record = listed(clocked_accounts, order_id)
    assert record["StandingOrderStatusCode"] == "Inactive" and "NextPaymentDateTime" not in record
    assert (record["LastPaymentDateTime"], record["LastPaymentAmount"]) == (THREE_DATES[2], amount("35.00"))

    details = clocked_payments.get(f"{DOMESTIC}/{order_id}/payment-details", headers=who()).json()
    assert_ob(details, "pisp", "OBWritePaymentDetailsResponse1")
    assert [(s["Status"], s["StatusUpdateDateTime"], s["PaymentTransactionId"])
            for s in details["Data"]["PaymentStatus"]] == [
        ("Accepted", created["Data"]["CreationDateTime"], order_id),
        *[("AcceptedSettlementCompleted", when, t["TransactionId"]) for when, t in zip(THREE_DATES, reversed(paid))]]
    answer = clocked_payments.get(f"{DOMESTIC}/{order_id}", headers=who()).json()
    assert answer == created  # the order itself stays as it was set up


def test_a_final_payment_date_ends_it(clocked_payments, clocked_accounts, clock) -> None:
    weekly = standing_order(FIRST, "10.00", frequency="IntrvlWkDay:01:05",
                            FinalPaymentDateTime="2026-06-26T08:00:00+00:00")
    order_id = set_up(clocked_payments, weekly).json()["Data"]["DomesticStandingOrderId"]
    assert listed(clocked_accounts, order_id)["FinalPaymentDateTime"] == "2026-06-26T08:00:00+00:00"
    before = balance(clocked_accounts)
    clock.now = datetime.fromisoformat("2026-09-01T00:00:00+00:00")
    assert balance(clocked_accounts) == before - 4 * 1000  # Fridays 5, 12, 19 and 26 June


def test_an_open_ended_one_has_no_final_payment(clocked_payments, clocked_accounts) -> None:
    order_id = set_up(clocked_payments, standing_order(FIRST)).json()["Data"]["DomesticStandingOrderId"]
    record = listed(clocked_accounts, order_id)
    assert record["StandingOrderStatusCode"] == "Active"
    assert "FinalPaymentDateTime" not in record and "NumberOfPayments" not in record


def test_a_first_payment_due_today_is_paid_at_once(clocked_payments, clocked_accounts, clock) -> None:
    before = balance(clocked_accounts)
    today = clock.now.replace(hour=0)
    set_up(clocked_payments, standing_order(today, "25.00"))
    assert balance(clocked_accounts) == before - 2500
    assert transactions(clocked_accounts)[0]["BookingDateTime"] == clock.now.isoformat()


def test_a_first_payment_due_today_without_the_funds_is_refused(clocked_payments, clocked_bank: Bank, clock,
                                                                clocked_accounts, assert_ob) -> None:
    available = clocked_bank.ledger.available("acc-alice-savings")
    response = set_up(clocked_payments, standing_order(clock.now, f"{(available + 1) / 100:.2f}"),
                      debtor="acc-alice-savings")
    assert response.status_code == 400
    assert_ob(response.json(), "pisp", "OBErrorResponse1")
    assert response.json()["Errors"][0] == {"ErrorCode": "SBOX.InsufficientFunds", "Message": "insufficient funds",
                                           "Path": "Data.Initiation.FirstPaymentAmount.Amount"}
    assert clocked_bank.ledger.available("acc-alice-savings") == available
    assert records(clocked_accounts, "standing-orders", "acc-alice-savings")["Data"]["StandingOrder"] == []


def test_an_instalment_without_the_funds_is_refused_and_the_order_goes_on(clocked_payments, clocked_bank: Bank,
                                                                          clock, assert_ob) -> None:
    available = clocked_bank.ledger.available("acc-alice-savings")
    order = standing_order(FIRST, "1.00", NumberOfPayments="3", Frequency="IntrvlDay:07",
                           RecurringPaymentAmount=amount(f"{(available + 100) // 100}.00"),
                           FinalPaymentAmount=amount("2.00"))
    created = set_up(clocked_payments, order, debtor="acc-alice-savings").json()
    clock.now = FIRST + timedelta(days=30)
    assert clocked_bank.ledger.available("acc-alice-savings") == available - 100 - 200
    path = f"{DOMESTIC}/{created['Data']['DomesticStandingOrderId']}/payment-details"
    details = clocked_payments.get(path, headers=who()).json()
    assert_ob(details, "pisp", "OBWritePaymentDetailsResponse1")
    assert [s["Status"] for s in details["Data"]["PaymentStatus"]] == [
        "Accepted", "AcceptedSettlementCompleted", "Rejected", "AcceptedSettlementCompleted"]


@pytest.mark.parametrize(("change", "code", "path"), [
    ({"Frequency": "NotKnown"}, "UK.OBIE.Unsupported.Frequency", "Data.Initiation.Frequency"),
    ({"NumberOfPayments": "0"}, "UK.OBIE.Field.Invalid", "Data.Initiation.NumberOfPayments"),
    ({"NumberOfPayments": "1001"}, "UK.OBIE.Field.Invalid", "Data.Initiation.NumberOfPayments"),
    ({"NumberOfPayments": "twelve"}, "UK.OBIE.Field.Invalid", "Data.Initiation.NumberOfPayments"),
    ({"FinalPaymentDateTime": "2026-06-04T00:00:00+00:00"}, "UK.OBIE.Field.InvalidDate",
     "Data.Initiation.FinalPaymentDateTime"),
    ({"RecurringPaymentDateTime": "2026-06-05T08:00:00+00:00"}, "UK.OBIE.Field.InvalidDate",
     "Data.Initiation.RecurringPaymentDateTime"),
    ({"FirstPaymentDateTime": "2026-06-01T23:59:59+00:00"}, "UK.OBIE.Field.InvalidDate",
     "Data.Initiation.FirstPaymentDateTime"),
    ({"FirstPaymentAmount": amount("25.00", "EUR")}, "UK.OBIE.Unsupported.Currency",
     "Data.Initiation.FirstPaymentAmount.Currency"),
    ({"RecurringPaymentAmount": amount("0.00")}, "UK.OBIE.Field.Invalid",
     "Data.Initiation.RecurringPaymentAmount.Amount"),
    ({"Frequency": None}, "UK.OBIE.Field.Missing", "Data.Initiation.Frequency"),
])
def test_standing_orders_the_bank_cannot_keep_are_refused(clocked_payments, clocked_accounts, change: dict,
                                                          code: str, path: str) -> None:
    initiation = {key: value for key, value in (standing_order(FIRST) | change).items() if value is not None}
    response = set_up(clocked_payments, initiation)
    assert response.status_code == 400, response.text
    error = response.json()["Errors"][0]
    assert (error["ErrorCode"], error["Path"]) == (code, path)
    mine = records(clocked_accounts, "standing-orders")["Data"]["StandingOrder"]
    assert not [r for r in mine if r["StandingOrderId"].startswith("dso-")]


def test_an_international_standing_order_converts_each_instalment(clocked_payments, clocked_accounts, assert_ob,
                                                                  clock) -> None:
    first = datetime.fromisoformat("2026-06-15T06:00:00+00:00")
    response = set_up(clocked_payments, international_standing_order(first, "30.00", NumberOfPayments="2"),
                      INTERNATIONAL)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert_ob(answer, "pisp", "OBWriteInternationalStandingOrderResponse7")
    data = answer["Data"]
    assert data["Status"] == "InitiationCompleted"
    assert data["Charges"] == [{"ChargeBearer": "BorneByDebtor", "Type": "SBOX.InternationalPaymentFee",
                                "Amount": amount("2.50")}]
    record = listed(clocked_accounts, data["InternationalStandingOrderId"])
    assert record["FirstPaymentAmount"] == record["FinalPaymentAmount"] == amount("30.00", "EUR")
    assert record["FinalPaymentDateTime"] == "2026-07-15T06:00:00+00:00"
    assert record["CreditorAccount"] == ABROAD and record["Reference"] == "RENT ABROAD"

    before = balance(clocked_accounts)
    clock.now = datetime.fromisoformat("2026-08-01T00:00:00+00:00")
    assert balance(clocked_accounts) == before - 2 * (2612 + 250)  # 30 / 1.1484 = 26.12, and the fee, twice
    assert listed(clocked_accounts, data["InternationalStandingOrderId"])["StandingOrderStatusCode"] == "Inactive"
    path = f"{INTERNATIONAL}/{data['InternationalStandingOrderId']}"
    assert clocked_payments.get(path, headers=who()).json() == answer
    assert clocked_payments.get(path, headers=who("bob")).status_code == 404
    details = clocked_payments.get(f"{path}/payment-details", headers=who()).json()
    assert [s["Status"] for s in details["Data"]["PaymentStatus"]] == ["Accepted"] + ["AcceptedSettlementCompleted"] * 2


def test_the_seeded_standing_orders_are_still_listed(clocked_accounts, bank: Bank) -> None:
    answer = records(clocked_accounts, "standing-orders")["Data"]["StandingOrder"]
    assert answer == bank.records["StandingOrder"]["acc-alice-current"]
