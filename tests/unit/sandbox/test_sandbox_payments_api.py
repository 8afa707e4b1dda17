"""Payments service: domestic payments settle against the ledger, and survive a restart with a state file."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.sandbox.app import create_accounts_app, create_payments_app
from gateway.sandbox.data import Bank, build_bank

AISP = "/open-banking/v3.1/aisp"
PAYMENTS = "/open-banking/v3.1/pisp/domestic-payments"


def headers(customer: str = "alice", debtor: str = "acc-alice-current") -> dict[str, str]:
    return {"x-bank-customer-id": customer, "x-bank-debtor-account-id": debtor}


def payment_body(amount: str = "25.00", consent_id: str = "pdc-001", creditor: str = "20000055667788") -> dict:
    return {
        "Data": {
            "ConsentId": consent_id,
            "Initiation": {
                "InstructionIdentification": "instr-001",
                "EndToEndIdentification": "e2e-001",
                "LocalInstrument": "UK.OBIE.FPS",
                "InstructedAmount": {"Amount": amount, "Currency": "GBP"},
                "CreditorAccount": {
                    "SchemeName": "UK.OBIE.SortCodeAccountNumber",
                    "Identification": creditor,
                    "Name": "Ace Plumbing Ltd",
                },
                "RemittanceInformation": {"Reference": "INV-4471", "Unstructured": "Boiler service"},
            },
        },
        "Risk": {"PaymentContextCode": "BillingGoodsAndServicesInArrears"},
    }


def balance(client, account_id: str, customer: str = "alice") -> dict:
    body = client.get(f"{AISP}/accounts/{account_id}/balances", headers={"x-bank-customer-id": customer}).json()
    return next(b for b in body["Data"]["Balance"] if b["Type"] == "InterimBooked")


def transactions(client, account_id: str, customer: str = "alice") -> list[dict]:
    path = f"{AISP}/accounts/{account_id}/transactions"
    return client.get(path, headers={"x-bank-customer-id": customer}).json()["Data"]["Transaction"]


def pence(entry: dict) -> int:
    sign = 1 if entry["CreditDebitIndicator"] == "Credit" else -1
    return sign * int(Decimal(entry["Amount"]["Amount"]) * 100)


def amount(pence: int) -> str:
    return f"{pence // 100}.{pence % 100:02d}"


def test_request_fixture_is_a_valid_ob_write_domestic(assert_ob) -> None:
    assert_ob(payment_body(), "pisp", "OBWriteDomestic2")


def test_healthz(payments_client) -> None:
    assert payments_client.get("/healthz").json() == {"status": "ok"}


def test_payment_settles_and_debits_the_ledger(payments_client, fresh_accounts_client, assert_ob) -> None:
    before = balance(fresh_accounts_client, "acc-alice-current")
    response = payments_client.post(PAYMENTS, json=payment_body("25.40"), headers=headers())
    assert response.status_code == 201
    body = response.json()
    assert_ob(body, "pisp", "OBWriteDomesticResponse5")
    data = body["Data"]
    assert data["Status"] == "AcceptedSettlementCompleted" and data["ConsentId"] == "pdc-001"
    assert data["Initiation"] == payment_body("25.40")["Data"]["Initiation"]
    assert body["Links"]["Self"].endswith(f"{PAYMENTS}/{data['DomesticPaymentId']}")
    after = balance(fresh_accounts_client, "acc-alice-current")
    assert pence(after) == pence(before) - 2540
    newest = transactions(fresh_accounts_client, "acc-alice-current")[0]
    assert newest["CreditDebitIndicator"] == "Debit" and newest["Amount"] == {"Amount": "25.40", "Currency": "GBP"}
    assert newest["CreditorAccount"]["Identification"] == "20000055667788"
    assert newest["TransactionReference"] == "e2e-001" and "INV-4471" in newest["TransactionInformation"]
    assert newest["Balance"]["Amount"] == after["Amount"]


def test_payment_can_be_read_back_by_its_customer_only(payments_client, assert_ob) -> None:
    created = payments_client.post(PAYMENTS, json=payment_body(), headers=headers()).json()
    path = f"{PAYMENTS}/{created['Data']['DomesticPaymentId']}"
    mine = payments_client.get(path, headers={"x-bank-customer-id": "alice"})
    assert mine.status_code == 200 and mine.json() == created
    assert_ob(mine.json(), "pisp", "OBWriteDomesticResponse5")
    theirs = payments_client.get(path, headers={"x-bank-customer-id": "bob"})
    assert theirs.status_code == 404
    assert_ob(theirs.json(), "pisp", "OBErrorResponse1")
    assert payments_client.get(f"{PAYMENTS}/dp-nope", headers={"x-bank-customer-id": "alice"}).status_code == 404


def test_payment_details_give_its_status_history(payments_client, fresh_accounts_client, assert_ob) -> None:
    created = payments_client.post(PAYMENTS, json=payment_body(), headers=headers()).json()["Data"]
    path = f"{PAYMENTS}/{created['DomesticPaymentId']}/payment-details"
    details = payments_client.get(path, headers={"x-bank-customer-id": "alice"})
    assert details.status_code == 200
    assert_ob(details.json(), "pisp", "OBWritePaymentDetailsResponse1")
    history = details.json()["Data"]["PaymentStatus"]
    assert [(s["Status"], s["StatusUpdateDateTime"]) for s in history] == [
        ("Received", created["CreationDateTime"]), ("AcceptedSettlementCompleted", created["CreationDateTime"])]
    assert history[0]["PaymentTransactionId"] == created["DomesticPaymentId"]
    assert history[1]["PaymentTransactionId"] == transactions(fresh_accounts_client, "acc-alice-current")[0][
        "TransactionId"]
    assert history[1]["StatusDetail"] == {"LocalInstrument": "UK.OBIE.FPS", "Status": "Payment 1 booked"}
    assert payments_client.get(path, headers={"x-bank-customer-id": "bob"}).status_code == 404


def test_customer_header_is_required(payments_client, assert_ob) -> None:
    anonymous = {"x-bank-debtor-account-id": "acc-alice-current"}
    response = payments_client.post(PAYMENTS, json=payment_body(), headers=anonymous)
    assert response.status_code == 403
    assert_ob(response.json(), "pisp", "OBErrorResponse1")
    assert payments_client.get(f"{PAYMENTS}/dp-x").status_code == 403


def test_insufficient_funds_are_refused_and_nothing_moves(payments_client, fresh_accounts_client, assert_ob) -> None:
    before = balance(fresh_accounts_client, "acc-alice-savings")
    too_much = payment_body("999999.00")
    response = payments_client.post(PAYMENTS, json=too_much, headers=headers(debtor="acc-alice-savings"))
    assert response.status_code == 400
    assert_ob(response.json(), "pisp", "OBErrorResponse1")
    assert response.json()["Errors"][0]["ErrorCode"] == "SBOX.InsufficientFunds"
    assert balance(fresh_accounts_client, "acc-alice-savings") == before


def test_overdraft_counts_towards_funds(fresh_bank: Bank, payments_client) -> None:
    account = fresh_bank.ledger.account("acc-bob-current")
    available = fresh_bank.ledger.balance(account.account_id) + account.credit_limit
    just_too_much = payment_body(amount(available + 1), consent_id="c-1")
    bob = headers("bob", "acc-bob-current")
    assert payments_client.post(PAYMENTS, json=just_too_much, headers=bob).status_code == 400
    all_of_it = payment_body(amount(available), consent_id="c-2")
    assert payments_client.post(PAYMENTS, json=all_of_it, headers=bob).status_code == 201
    assert fresh_bank.ledger.balance(account.account_id) == -account.credit_limit


def test_paying_another_customer_here_credits_them(payments_client, fresh_bank: Bank, fresh_accounts_client) -> None:
    bob = fresh_bank.ledger.account("acc-bob-current")
    before = balance(fresh_accounts_client, bob.account_id, "bob")
    body = payment_body("12.00", creditor=bob.identification)
    assert payments_client.post(PAYMENTS, json=body, headers=headers()).status_code == 201
    assert pence(balance(fresh_accounts_client, bob.account_id, "bob")) == pence(before) + 1200
    credit = transactions(fresh_accounts_client, bob.account_id, "bob")[0]
    assert credit["CreditDebitIndicator"] == "Credit" and credit["DebtorAccount"]["Name"] == "Alice Smith"


def test_a_retried_payment_is_not_paid_twice(payments_client, fresh_accounts_client) -> None:
    first = payments_client.post(PAYMENTS, json=payment_body("30.00"), headers=headers()).json()
    before = balance(fresh_accounts_client, "acc-alice-current")
    again = payments_client.post(PAYMENTS, json=payment_body("30.00"), headers=headers())
    assert again.status_code == 201 and again.json()["Data"] == first["Data"]
    assert balance(fresh_accounts_client, "acc-alice-current") == before


def test_a_used_consent_cannot_pay_something_else(payments_client, assert_ob) -> None:
    assert payments_client.post(PAYMENTS, json=payment_body("30.00"), headers=headers()).status_code == 201
    response = payments_client.post(PAYMENTS, json=payment_body("31.00"), headers=headers())
    assert response.status_code == 400
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.InvalidConsentStatus"


def _with(path: tuple[str, ...], value: object) -> dict:
    body = payment_body()
    node = body
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


AMOUNT = ("Data", "Initiation", "InstructedAmount", "Amount")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_with(AMOUNT, "0.00"), "UK.OBIE.Field.Invalid"),
        (_with(AMOUNT, "1.234"), "UK.OBIE.Field.Invalid"),
        (_with(AMOUNT, "-5.00"), "UK.OBIE.Field.Invalid"),
        (_with(AMOUNT, "ten"), "UK.OBIE.Field.Invalid"),
        (_with(AMOUNT, 10), "UK.OBIE.Field.Invalid"),
        (_with(("Data", "Initiation", "InstructedAmount", "Currency"), "EUR"), "UK.OBIE.Unsupported.Currency"),
        (_with(("Data", "Initiation", "CreditorAccount"), None), "UK.OBIE.Field.Missing"),
        (_with(("Data", "Initiation", "CreditorAccount", "Name"), None), "UK.OBIE.Field.Missing"),
        (_with(("Data", "ConsentId"), None), "UK.OBIE.Field.Missing"),
        (_with(("Data", "Initiation", "DebtorAccount"),
               {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "11111111111111"}),
         "UK.OBIE.Field.Invalid"),
        ([], "UK.OBIE.Resource.InvalidFormat"),
    ],
)
def test_invalid_payments_are_refused(payments_client, fresh_bank: Bank, assert_ob, body: object, code: str) -> None:
    before = fresh_bank.ledger.balance("acc-alice-current")
    response = payments_client.post(PAYMENTS, json=body, headers=headers())
    assert response.status_code == 400
    assert_ob(response.json(), "pisp", "OBErrorResponse1")
    assert response.json()["Errors"][0]["ErrorCode"] == code
    assert fresh_bank.ledger.balance("acc-alice-current") == before


def test_a_matching_debtor_account_in_the_initiation_is_accepted(payments_client, fresh_bank: Bank) -> None:
    debtor = fresh_bank.ledger.account("acc-alice-current")
    body = payment_body()
    body["Data"]["Initiation"]["DebtorAccount"] = {"SchemeName": debtor.scheme, "Identification": debtor.identification}
    assert payments_client.post(PAYMENTS, json=body, headers=headers()).status_code == 201


@pytest.mark.parametrize(
    ("request_headers", "code"),
    [
        ({"x-bank-customer-id": "alice"}, "UK.OBIE.Header.Missing"),
        (headers(debtor="acc-bob-current"), "UK.OBIE.Header.Invalid"),
        (headers(debtor="acc-nope"), "UK.OBIE.Header.Invalid"),
    ],
)
def test_debtor_account_must_be_named_and_owned(payments_client, request_headers: dict, code: str) -> None:
    response = payments_client.post(PAYMENTS, json=payment_body(), headers=request_headers)
    assert response.status_code == 400
    assert response.json()["Errors"][0]["ErrorCode"] == code


def test_non_json_body_is_refused(payments_client) -> None:
    response = payments_client.post(PAYMENTS, content=b"{", headers=headers())
    assert response.status_code == 400
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.InvalidFormat"


def test_state_file_replays_payments_after_a_restart(tmp_path: Path, client_for, seed: int, anchor: datetime) -> None:
    state = tmp_path / "bank-state.jsonl"
    first = build_bank(seed, anchor, state_file=state)
    bob = first.ledger.account("acc-bob-current")
    payments = client_for(create_payments_app(first))
    made = [
        payments.post(PAYMENTS, json=payment_body("10.00", consent_id="c-1"), headers=headers()).json(),
        payments.post(PAYMENTS, json=payment_body("2.50", "c-2", bob.identification), headers=headers()).json(),
    ]
    assert len(state.read_text().splitlines()) == 2

    restarted = build_bank(seed, anchor, state_file=state)
    payments, accounts = client_for(create_payments_app(restarted)), client_for(create_accounts_app(restarted))
    for payment in made:
        path = f"{PAYMENTS}/{payment['Data']['DomesticPaymentId']}"
        assert payments.get(path, headers={"x-bank-customer-id": "alice"}).json() == payment
    for account_id, customer in (("acc-alice-current", "alice"), ("acc-bob-current", "bob")):
        assert restarted.ledger.balance(account_id) == first.ledger.balance(account_id)
        assert transactions(accounts, account_id, customer) == transactions(
            client_for(create_accounts_app(first)), account_id, customer
        )
    # Consents stay used across the restart, and new payments append to the same file.
    retry = payments.post(PAYMENTS, json=payment_body("10.00", consent_id="c-1"), headers=headers())
    assert retry.json() == made[0]
    assert payments.post(PAYMENTS, json=payment_body("1.00", consent_id="c-3"), headers=headers()).status_code == 201
    assert len(state.read_text().splitlines()) == 3


def test_without_a_state_file_a_rebuild_starts_clean(client_for, seed: int, anchor: datetime) -> None:
    bank = build_bank(seed, anchor)
    client_for(create_payments_app(bank)).post(PAYMENTS, json=payment_body(), headers=headers())
    assert build_bank(seed, anchor).ledger.balance("acc-alice-current") != bank.ledger.balance("acc-alice-current")

