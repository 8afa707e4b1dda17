"""Scheduled payments, domestic and international: pending (and listed among the account's scheduled payments) until
their RequestedExecutionDateTime, then executed on the bank's clock, funds allowing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pisp_requests import (
    CREDITOR,
    PISP,
    amount,
    balance,
    headers,
    international_scheduled,
    records,
    request,
    scheduled,
    signed,
    transactions,
    who,
)

from gateway.sandbox.data import Bank

DOMESTIC = f"{PISP}/domestic-scheduled-payments"
INTERNATIONAL = f"{PISP}/international-scheduled-payments"


def schedule(client, initiation: dict, path: str = DOMESTIC, consent_id: str = "c-1",
             debtor: str = "acc-alice-current"):
    return client.post(path, json=request(initiation, consent_id), headers=headers(debtor=debtor))


def test_request_fixtures_are_valid(assert_ob, clock) -> None:
    assert_ob(request(scheduled(clock.now)), "pisp", "OBWriteDomesticScheduled2")
    assert_ob(request(international_scheduled(clock.now)), "pisp", "OBWriteInternationalScheduled3")


def test_a_scheduled_payment_waits_and_is_listed(clocked_payments, clocked_accounts, assert_ob, clock) -> None:
    when = (clock.now + timedelta(days=3)).replace(hour=10, minute=0)
    before, history = balance(clocked_accounts), transactions(clocked_accounts)
    response = schedule(clocked_payments, scheduled(when, "20.00"))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert_ob(answer, "pisp", "OBWriteDomesticScheduledResponse5")
    data = answer["Data"]
    assert data["Status"] == "InitiationPending" and data["StatusUpdateDateTime"] == clock.now.isoformat()
    assert data["ExpectedExecutionDateTime"] == when.isoformat()
    assert answer["Links"]["Self"].endswith(f"{DOMESTIC}/{data['DomesticScheduledPaymentId']}")
    assert (balance(clocked_accounts), transactions(clocked_accounts)) == (before, history)

    listed = records(clocked_accounts, "scheduled-payments")
    assert_ob(listed, "aisp", "OBReadScheduledPayment3")
    [mine] = [r for r in listed["Data"]["ScheduledPayment"]
              if r["ScheduledPaymentId"] == data["DomesticScheduledPaymentId"]]
    assert mine == {"AccountId": "acc-alice-current", "ScheduledPaymentId": data["DomesticScheduledPaymentId"],
                    "ScheduledPaymentDateTime": when.isoformat(), "ScheduledType": "Execution",
                    "Reference": "DEPOSIT", "InstructedAmount": amount("20.00"), "CreditorAccount": CREDITOR}
    others = records(clocked_accounts, "scheduled-payments", "acc-alice-savings")["Data"]["ScheduledPayment"]
    assert data["DomesticScheduledPaymentId"] not in [r["ScheduledPaymentId"] for r in others]


def test_it_executes_when_its_time_comes(clocked_payments, clocked_accounts, assert_ob, clock) -> None:
    when = clock.now + timedelta(days=2)
    created = schedule(clocked_payments, scheduled(when, "20.00")).json()
    path = f"{DOMESTIC}/{created['Data']['DomesticScheduledPaymentId']}"
    before = balance(clocked_accounts)
    clock.advance(days=1)
    assert clocked_payments.get(path, headers=who()).json()["Data"]["Status"] == "InitiationPending"
    assert balance(clocked_accounts) == before

    clock.advance(days=1, seconds=1)
    answer = clocked_payments.get(path, headers=who()).json()
    assert_ob(answer, "pisp", "OBWriteDomesticScheduledResponse5")
    assert answer["Data"]["Status"] == "InitiationCompleted"
    assert answer["Data"]["StatusUpdateDateTime"] == when.isoformat()
    assert balance(clocked_accounts) == before - 2000
    debit = transactions(clocked_accounts)[0]
    assert (debit["BookingDateTime"], signed(debit), debit["CreditorAccount"]) == (when.isoformat(), -2000, CREDITOR)
    ids = [r["ScheduledPaymentId"] for r in records(clocked_accounts, "scheduled-payments")["Data"]["ScheduledPayment"]]
    assert created["Data"]["DomesticScheduledPaymentId"] not in ids

    details = clocked_payments.get(f"{path}/payment-details", headers=who()).json()
    assert_ob(details, "pisp", "OBWritePaymentDetailsResponse1")
    history = [(s["Status"], s["StatusUpdateDateTime"], s["PaymentTransactionId"])
               for s in details["Data"]["PaymentStatus"]]
    assert history == [("Pending", created["Data"]["CreationDateTime"], created["Data"]["DomesticScheduledPaymentId"]),
                       ("AcceptedSettlementCompleted", when.isoformat(), debit["TransactionId"])]


def test_reading_the_balance_is_enough_to_run_it(clocked_payments, clocked_accounts, clock) -> None:
    schedule(clocked_payments, scheduled(clock.now + timedelta(hours=1), "7.00"))
    before = balance(clocked_accounts)
    clock.advance(hours=2)
    assert balance(clocked_accounts) == before - 700


def test_without_the_funds_on_the_day_it_fails_and_books_nothing(clocked_payments, clocked_accounts, clocked_bank,
                                                                  clock, assert_ob) -> None:
    available = clocked_bank.ledger.available("acc-alice-savings")
    too_much = f"{(available + 100) // 100}.00"
    when = clock.now + timedelta(days=1)
    created = schedule(clocked_payments, scheduled(when, too_much), debtor="acc-alice-savings")
    assert created.status_code == 201  # nothing is due yet: funds are a matter for the day
    before = balance(clocked_accounts, "acc-alice-savings")
    clock.advance(days=2)
    path = f"{DOMESTIC}/{created.json()['Data']['DomesticScheduledPaymentId']}"
    answer = clocked_payments.get(path, headers=who()).json()
    assert (answer["Data"]["Status"], answer["Data"]["StatusUpdateDateTime"]) == ("InitiationFailed", when.isoformat())
    assert balance(clocked_accounts, "acc-alice-savings") == before
    details = clocked_payments.get(f"{path}/payment-details", headers=who()).json()
    assert_ob(details, "pisp", "OBWritePaymentDetailsResponse1")
    failed = details["Data"]["PaymentStatus"][-1]
    assert failed["Status"] == "Rejected" and failed["StatusDetail"]["StatusReason"] == "ProprietaryRejection"


def test_one_due_already_today_executes_at_once(clocked_payments, clocked_accounts, clock) -> None:
    before = balance(clocked_accounts)
    earlier_today = clock.now.replace(hour=7)
    answer = schedule(clocked_payments, scheduled(earlier_today, "3.00")).json()
    assert answer["Data"]["Status"] == "InitiationCompleted"
    assert balance(clocked_accounts) == before - 300
    assert transactions(clocked_accounts)[0]["BookingDateTime"] == clock.now.isoformat()


def test_one_due_at_once_without_the_funds_is_refused_and_not_kept(clocked_payments, clocked_accounts, clocked_bank,
                                                                   clock, assert_ob) -> None:
    available = clocked_bank.ledger.available("acc-alice-savings")
    response = schedule(clocked_payments, scheduled(clock.now, f"{(available + 1) / 100:.2f}"),
                        debtor="acc-alice-savings")
    assert response.status_code == 400
    assert_ob(response.json(), "pisp", "OBErrorResponse1")
    assert response.json()["Errors"][0]["ErrorCode"] == "SBOX.InsufficientFunds"
    assert clocked_bank.ledger.available("acc-alice-savings") == available
    assert records(clocked_accounts, "scheduled-payments", "acc-alice-savings")["Data"]["ScheduledPayment"] == []


@pytest.mark.parametrize(("when", "code"), [
    (timedelta(days=-1), "UK.OBIE.Field.InvalidDate"),
    (timedelta(days=3700), "UK.OBIE.Field.InvalidDate"),
])
def test_dates_the_bank_cannot_keep_are_refused(clocked_payments, clock, when: timedelta, code: str) -> None:
    response = schedule(clocked_payments, scheduled(clock.now + when))
    assert response.status_code == 400
    error = response.json()["Errors"][0]
    assert (error["ErrorCode"], error["Path"]) == (code, "Data.Initiation.RequestedExecutionDateTime")


@pytest.mark.parametrize("when", ["2026-06-05", "2026-06-05T10:00:00", "soon"])
def test_a_date_time_needs_its_zone(clocked_payments, clock, when: str) -> None:
    initiation = scheduled(clock.now) | {"RequestedExecutionDateTime": when}
    response = schedule(clocked_payments, initiation)
    assert response.status_code == 400
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Field.InvalidDate"


def test_a_consent_schedules_once(clocked_payments, clock) -> None:
    initiation = scheduled(clock.now + timedelta(days=1))
    first = schedule(clocked_payments, initiation)
    again = schedule(clocked_payments, initiation)
    assert (again.status_code, again.json()) == (201, first.json())
    other = schedule(clocked_payments, initiation | {"InstructedAmount": amount("21.00")})
    assert other.status_code == 400
    assert other.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.InvalidConsentStatus"


def test_an_international_one_converts_on_the_day(clocked_payments, clocked_accounts, clock, assert_ob) -> None:
    when = clock.now + timedelta(days=5)
    created = schedule(clocked_payments, international_scheduled(when, "50.00", "USD"), INTERNATIONAL)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert_ob(answer, "pisp", "OBWriteInternationalScheduledResponse6")
    assert answer["Data"]["Status"] == "InitiationPending"
    assert answer["Data"]["ExchangeRateInformation"] == {"UnitCurrency": "GBP", "ExchangeRate": 1.2573,
                                                         "RateType": "Actual"}
    assert answer["Data"]["Charges"][0]["Amount"] == amount("9.00")
    listed = records(clocked_accounts, "scheduled-payments")
    assert_ob(listed, "aisp", "OBReadScheduledPayment3")
    [mine] = [r for r in listed["Data"]["ScheduledPayment"]
              if r["ScheduledPaymentId"] == answer["Data"]["InternationalScheduledPaymentId"]]
    assert mine["InstructedAmount"] == amount("50.00", "USD")
    assert mine["ScheduledPaymentDateTime"] == when.isoformat()

    before = balance(clocked_accounts)
    clock.advance(days=6)
    path = f"{INTERNATIONAL}/{answer['Data']['InternationalScheduledPaymentId']}"
    done = clocked_payments.get(path, headers=who()).json()
    assert_ob(done, "pisp", "OBWriteInternationalScheduledResponse6")
    assert done["Data"]["Status"] == "InitiationCompleted"
    assert balance(clocked_accounts) == before - 3977 - 900  # 50 / 1.2573 = 39.77, and the fee
    fee, payment = transactions(clocked_accounts)[:2]
    assert payment["BookingDateTime"] == fee["BookingDateTime"] == when.isoformat()
    assert payment["CurrencyExchange"]["TargetCurrency"] == "USD"


def test_another_customers_scheduled_payment_is_not_found(clocked_payments, clock) -> None:
    created = schedule(clocked_payments, scheduled(clock.now + timedelta(days=1))).json()
    path = f"{DOMESTIC}/{created['Data']['DomesticScheduledPaymentId']}"
    assert clocked_payments.get(path, headers=who("bob")).status_code == 404
    assert clocked_payments.get(f"{path}/payment-details", headers=who("bob")).status_code == 404
    # ... nor is it a payment of another kind.
    other = f"{PISP}/domestic-payments/{created['Data']['DomesticScheduledPaymentId']}"
    assert clocked_payments.get(other, headers=who()).status_code == 404


def test_seeded_scheduled_payments_are_still_listed(clocked_accounts, bank: Bank) -> None:
    listed = records(clocked_accounts, "scheduled-payments")["Data"]["ScheduledPayment"]
    assert bank.records["ScheduledPayment"]["acc-alice-current"] == listed
