"""File payments: a file of domestic payments (UK.OBIE.PaymentInitiation.3.1) passed on by the gateway in the body's
"File" member (base64), checked against the consent's FileHash, count and sum, and paid at once or on its date."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from pisp_requests import CREDITOR, PISP, amount, balance, headers, signed, transactions, who

from gateway.sandbox.app import create_payments_app
from gateway.sandbox.data import Bank, build_bank

FILES = f"{PISP}/file-payments"


def line(number: int, value: str, creditor: dict = CREDITOR, currency: str = "GBP") -> dict:
    return {"InstructionIdentification": f"file-instr-{number}", "EndToEndIdentification": f"file-e2e-{number}",
            "InstructedAmount": amount(value, currency), "CreditorAccount": creditor,
            "RemittanceInformation": {"Reference": f"PAYROLL {number}"}}


def file_of(*payments: dict) -> bytes:
    return orjson.dumps({"Data": {"DomesticPayments": list(payments)}})


def body(content: bytes, consent_id: str = "c-1", **initiation: object) -> dict:
    """The gateway's request for a file payment of `content`: its Initiation describes the file (its count and sum
    too, when it holds payments)."""
    described: dict = {
        "FileType": "UK.OBIE.PaymentInitiation.3.1",
        "FileHash": base64.b64encode(hashlib.sha256(content).digest()).decode(),
        "FileReference": "PAYROLL-JUNE",
    }
    if content.startswith(b"{") and "DomesticPayments" in orjson.loads(content)["Data"]:
        payments = orjson.loads(content)["Data"]["DomesticPayments"]
        described |= {"NumberOfTransactions": str(len(payments)),
                      "ControlSum": float(sum(Decimal(p["InstructedAmount"]["Amount"]) for p in payments))}
    described |= initiation
    return {"Data": {"ConsentId": consent_id, "Initiation": described}, "File": base64.b64encode(content).decode()}


def pay(client, request: dict, customer: str = "alice", debtor: str = "acc-alice-current"):
    return client.post(FILES, json=request, headers=headers(customer, debtor))


@pytest.fixture
def payroll(clocked_bank: Bank) -> bytes:
    """Three payments, the second to bob's current account here."""
    bob = clocked_bank.ledger.account("acc-bob-current").reference()
    return file_of(line(1, "10.00"), line(2, "20.50", bob), line(3, "5.25"))


def test_the_request_is_an_ob_write_file_with_the_file_beside_it(assert_ob, payroll: bytes) -> None:
    request = body(payroll)
    assert base64.b64decode(request.pop("File")) == payroll
    assert_ob(request, "pisp", "OBWriteFile2")


def test_a_file_is_paid_at_once(clocked_payments, clocked_accounts, assert_ob, payroll: bytes, clock) -> None:
    before, bobs = balance(clocked_accounts), balance(clocked_accounts, "acc-bob-current", "bob")
    response = pay(clocked_payments, body(payroll))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert_ob(answer, "pisp", "OBWriteFileResponse3")
    data = answer["Data"]
    assert (data["Status"], data["StatusUpdateDateTime"]) == ("InitiationCompleted", clock.now.isoformat())
    assert data["Initiation"]["FileReference"] == "PAYROLL-JUNE"
    assert balance(clocked_accounts) == before - 1000 - 2050 - 525
    assert balance(clocked_accounts, "acc-bob-current", "bob") == bobs + 2050
    debits = transactions(clocked_accounts)[:3]
    assert sorted(signed(t) for t in debits) == [-2050, -1000, -525]
    assert {t["TransactionInformation"] for t in debits} >= {"ACME Ltd PAYROLL 1", "ACME Ltd PAYROLL 3"}

    path = f"{FILES}/{data['FilePaymentId']}"
    assert clocked_payments.get(path, headers=who()).json() == answer
    details = clocked_payments.get(f"{path}/payment-details", headers=who()).json()
    assert_ob(details, "pisp", "OBWritePaymentDetailsResponse1")
    assert [s["Status"] for s in details["Data"]["PaymentStatus"]] == [
        "Pending", "AcceptedSettlementCompleted", "AcceptedSettlementCompleted", "AcceptedSettlementCompleted"]
    report = clocked_payments.get(f"{path}/report-file", headers=who()).json()["Data"]
    assert (report["FilePaymentId"], report["Status"], report["NumberOfTransactions"]) == (
        data["FilePaymentId"], "InitiationCompleted", "3")
    assert [(p["EndToEndIdentification"], p["Status"]) for p in report["Payments"]] == [
        (f"file-e2e-{n}", "AcceptedSettlementCompleted") for n in (1, 2, 3)]
    assert {p["TransactionId"] for p in report["Payments"]} == {t["TransactionId"] for t in debits}


def test_a_file_for_later_is_paid_on_its_day(clocked_payments, clocked_accounts, payroll: bytes, clock) -> None:
    when = clock.now + timedelta(days=2)
    created = pay(clocked_payments, body(payroll, RequestedExecutionDateTime=when.isoformat())).json()["Data"]
    assert created["Status"] == "InitiationPending"
    path = f"{FILES}/{created['FilePaymentId']}"
    report = clocked_payments.get(f"{path}/report-file", headers=who()).json()["Data"]
    assert [p["Status"] for p in report["Payments"]] == ["Pending"] * 3
    before = balance(clocked_accounts)
    clock.advance(days=3)
    assert balance(clocked_accounts) == before - 3575
    answer = clocked_payments.get(path, headers=who()).json()["Data"]
    assert (answer["Status"], answer["StatusUpdateDateTime"]) == ("InitiationCompleted", when.isoformat())
    assert transactions(clocked_accounts)[0]["BookingDateTime"] == when.isoformat()


def test_a_file_the_funds_cannot_cover_is_refused_whole(clocked_payments, clocked_bank: Bank, assert_ob) -> None:
    available = clocked_bank.ledger.available("acc-alice-savings")
    content = file_of(line(1, "1.00"), line(2, f"{available // 100}.{available % 100:02d}"))
    response = pay(clocked_payments, body(content), debtor="acc-alice-savings")
    assert response.status_code == 400
    assert_ob(response.json(), "pisp", "OBErrorResponse1")
    assert response.json()["Errors"][0] == {"ErrorCode": "SBOX.InsufficientFunds", "Message": "insufficient funds",
                                           "Path": "Data.Initiation.ControlSum"}
    assert clocked_bank.ledger.available("acc-alice-savings") == available


def _tampered(request: dict, **change: object) -> dict:
    request["Data"]["Initiation"] |= change
    return request


@pytest.mark.parametrize(("make", "code", "path"), [
    (lambda c: _tampered(body(c), FileHash=base64.b64encode(b"0" * 32).decode()), "UK.OBIE.Field.Invalid",
     "Data.Initiation.FileHash"),
    (lambda c: _tampered(body(c), NumberOfTransactions="4"), "UK.OBIE.Field.Invalid",
     "Data.Initiation.NumberOfTransactions"),
    (lambda c: _tampered(body(c), ControlSum=35.76), "UK.OBIE.Field.Invalid", "Data.Initiation.ControlSum"),
    (lambda c: _tampered(body(c), FileType="UK.OBIE.pain.001.001.08"), "UK.OBIE.Field.Invalid",
     "Data.Initiation.FileType"),
    (lambda c: body(c) | {"File": "not base64!"}, "UK.OBIE.Resource.InvalidFormat", "File"),
    (lambda c: {"Data": body(c)["Data"]}, "UK.OBIE.Field.Missing", "File"),
    (lambda c: body(b"<xml/>"), "UK.OBIE.Resource.InvalidFormat", "File"),
    (lambda c: body(file_of(line(1, "1.00"), {**line(2, "2.00"), "CreditorAccount": None})),
     "UK.OBIE.Field.Missing", "File.Data.DomesticPayments.1.CreditorAccount"),
    (lambda c: body(file_of(line(1, "1.00", currency="EUR"))), "UK.OBIE.Unsupported.Currency",
     "File.Data.DomesticPayments.0.InstructedAmount.Currency"),
    (lambda c: body(orjson.dumps({"Data": {"Payments": []}})), "UK.OBIE.Field.Missing", "File.Data.DomesticPayments"),
])
def test_a_file_that_is_not_what_the_consent_describes_is_refused(clocked_payments, clocked_bank: Bank,
                                                                  payroll: bytes, make, code: str, path: str) -> None:
    before = clocked_bank.ledger.balance("acc-alice-current")
    response = pay(clocked_payments, make(payroll))
    assert response.status_code == 400, response.text
    error = response.json()["Errors"][0]
    assert (error["ErrorCode"], error["Path"]) == (code, path)
    assert clocked_bank.ledger.balance("acc-alice-current") == before


def test_a_consent_pays_its_file_once_and_only_its_customer_reads_it(clocked_payments, clocked_accounts,
                                                                     payroll: bytes) -> None:
    first = pay(clocked_payments, body(payroll))
    before = balance(clocked_accounts)
    again = pay(clocked_payments, body(payroll))
    assert (again.status_code, again.json()) == (201, first.json())
    assert balance(clocked_accounts) == before
    other = pay(clocked_payments, body(file_of(line(1, "1.00"))))
    assert other.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.InvalidConsentStatus"
    path = f"{FILES}/{first.json()['Data']['FilePaymentId']}"
    for suffix in ("", "/payment-details", "/report-file"):
        assert clocked_payments.get(path + suffix, headers=who("bob")).status_code == 404
        assert clocked_payments.get(path + suffix, headers=who()).status_code == 200


def test_a_file_payment_survives_a_restart(tmp_path: Path, client_for, seed: int, anchor: datetime, clock,
                                           payroll: bytes) -> None:
    state = tmp_path / "bank-state.jsonl"
    first = build_bank(seed, anchor, state_file=state, clock=clock)
    made = pay(client_for(create_payments_app(first)), body(payroll)).json()
    path = f"{FILES}/{made['Data']['FilePaymentId']}"
    restarted = build_bank(seed, anchor, state_file=state, clock=clock)
    payments = client_for(create_payments_app(restarted))
    assert payments.get(path, headers=who()).json() == made
    original = client_for(create_payments_app(first)).get(f"{path}/report-file", headers=who()).json()["Data"]
    assert payments.get(f"{path}/report-file", headers=who()).json()["Data"] == original
    for account_id in ("acc-alice-current", "acc-bob-current"):
        assert restarted.ledger.balance(account_id) == first.ledger.balance(account_id)
