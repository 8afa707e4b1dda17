"""Domestic VRP payments: many under one consent, each paid at once; a retry is known by its x-idempotency-key."""

from __future__ import annotations

import pytest
from pisp_requests import CREDITOR, PISP, amount, balance, headers, signed, transactions, vrp, who

from gateway.sandbox.data import Bank

VRPS = f"{PISP}/domestic-vrps"


def pay(client, body: dict, key: str | None = "key-1", customer: str = "alice", debtor: str = "acc-alice-current"):
    extra = {"x-idempotency-key": key} if key else {}
    return client.post(VRPS, json=body, headers=headers(customer, debtor) | extra)


def test_request_fixture_is_a_valid_vrp_request(assert_ob) -> None:
    assert_ob(vrp(), "vrp", "OBDomesticVRPRequest")


def test_a_vrp_payment_settles_at_once(clocked_payments, clocked_accounts, clocked_bank: Bank, assert_ob,
                                       clock) -> None:
    before = balance(clocked_accounts)
    response = pay(clocked_payments, vrp("5.40"))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert_ob(answer, "vrp", "OBDomesticVRPResponse")
    data = answer["Data"]
    assert (data["Status"], data["CreationDateTime"]) == ("AcceptedSettlementCompleted", clock.now.isoformat())
    assert data["Instruction"] == vrp("5.40")["Data"]["Instruction"]
    assert data["DebtorAccount"] == clocked_bank.ledger.account("acc-alice-current").reference()
    assert answer["Risk"] == {"PaymentContextCode": "TransferToSelf"}
    assert answer["Links"]["Self"].endswith(f"{VRPS}/{data['DomesticVRPId']}")
    assert balance(clocked_accounts) == before - 540
    debit = transactions(clocked_accounts)[0]
    assert (signed(debit), debit["CreditorAccount"], debit["TransactionReference"]) == (-540, CREDITOR, "vrp-e2e")
    assert debit["TransactionInformation"] == "ACME Ltd SWEEP"


def test_one_consent_pays_many_times(clocked_payments, clocked_accounts) -> None:
    before = balance(clocked_accounts)
    ids = {pay(clocked_payments, vrp("1.00"), key=f"key-{n}").json()["Data"]["DomesticVRPId"] for n in range(3)}
    assert len(ids) == 3
    assert balance(clocked_accounts) == before - 300


def test_a_retry_with_its_key_is_answered_not_paid_again(clocked_payments, clocked_accounts) -> None:
    first = pay(clocked_payments, vrp("2.00"))
    before = balance(clocked_accounts)
    again = pay(clocked_payments, vrp("2.00"))
    assert (again.status_code, again.json()) == (201, first.json())
    assert balance(clocked_accounts) == before
    other = pay(clocked_payments, vrp("3.00"))
    assert other.status_code == 400
    assert other.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Header.Invalid"
    assert balance(clocked_accounts) == before


def test_without_a_key_each_request_pays(clocked_payments, clocked_accounts) -> None:
    before = balance(clocked_accounts)
    pay(clocked_payments, vrp("2.00"), key=None)
    pay(clocked_payments, vrp("2.00"), key=None)
    assert balance(clocked_accounts) == before - 400


def test_read_back_with_its_details_by_its_customer_only(clocked_payments, assert_ob, clock) -> None:
    created = pay(clocked_payments, vrp()).json()
    path = f"{VRPS}/{created['Data']['DomesticVRPId']}"
    got = clocked_payments.get(path, headers=who())
    assert got.status_code == 200 and got.json() == created
    assert_ob(got.json(), "vrp", "OBDomesticVRPResponse")
    details = clocked_payments.get(f"{path}/payment-details", headers=who())
    assert_ob(details.json(), "vrp", "OBDomesticVRPDetails")
    assert [(s["Status"], s["StatusUpdateDateTime"]) for s in details.json()["Data"]["PaymentStatus"]] == [
        ("Received", clock.now.isoformat()), ("AcceptedSettlementCompleted", clock.now.isoformat())]
    for other in (path, f"{path}/payment-details"):
        refused = clocked_payments.get(other, headers=who("bob"))
        assert refused.status_code == 404
        assert_ob(refused.json(), "vrp", "OBErrorResponse1")
    assert clocked_payments.get(f"{VRPS}/vrp-nope", headers=who()).status_code == 404


def test_insufficient_funds_are_refused_and_nothing_moves(clocked_payments, clocked_accounts, clocked_bank: Bank,
                                                          assert_ob) -> None:
    """The funds are what /balances shows as InterimAvailable (the booked balance and the arranged overdraft)."""
    available = balance(clocked_accounts, "acc-bob-current", "bob", "InterimAvailable")
    assert available == balance(clocked_accounts, "acc-bob-current", "bob") + 25000
    too_much = vrp(f"{(available + 1) // 100}.{(available + 1) % 100:02d}")
    response = pay(clocked_payments, too_much, customer="bob", debtor="acc-bob-current")
    assert response.status_code == 400
    assert_ob(response.json(), "vrp", "OBErrorResponse1")
    assert response.json()["Errors"][0] == {"ErrorCode": "SBOX.InsufficientFunds", "Message": "insufficient funds",
                                           "Path": "Data.Instruction.InstructedAmount.Amount"}
    assert clocked_bank.ledger.available("acc-bob-current") == available
    # ... and a refused request does not use its key up.
    all_of_it = vrp(f"{available // 100}.{available % 100:02d}")
    assert pay(clocked_payments, all_of_it, customer="bob", debtor="acc-bob-current").status_code == 201
    assert clocked_bank.ledger.available("acc-bob-current") == 0


@pytest.mark.parametrize(("change", "code", "path"), [
    ({"InstructedAmount": amount("5.00", "EUR")}, "UK.OBIE.Unsupported.Currency",
     "Data.Instruction.InstructedAmount.Currency"),
    ({"InstructedAmount": amount("5.001")}, "UK.OBIE.Field.Invalid", "Data.Instruction.InstructedAmount.Amount"),
    ({"CreditorAccount": None}, "UK.OBIE.Field.Missing", "Data.Instruction.CreditorAccount"),
    ({"EndToEndIdentification": None}, "UK.OBIE.Field.Missing", "Data.Instruction.EndToEndIdentification"),
])
def test_invalid_instructions_are_refused(clocked_payments, clocked_bank: Bank, change: dict, code: str,
                                          path: str) -> None:
    body = vrp()
    instruction = body["Data"]["Instruction"]
    for name, value in change.items():
        if value is None:
            del instruction[name]
        else:
            instruction[name] = value
    before = clocked_bank.ledger.balance("acc-alice-current")
    response = pay(clocked_payments, body)
    assert response.status_code == 400
    error = response.json()["Errors"][0]
    assert (error["ErrorCode"], error["Path"]) == (code, path)
    assert clocked_bank.ledger.balance("acc-alice-current") == before


def test_a_debtor_account_named_in_the_initiation_must_be_the_one_paying(clocked_payments, clocked_bank: Bank) -> None:
    body = vrp()
    body["Data"]["Initiation"]["DebtorAccount"] = {"SchemeName": "UK.OBIE.SortCodeAccountNumber",
                                                   "Identification": "11111111111111", "Name": "Someone"}
    response = pay(clocked_payments, body)
    assert response.status_code == 400
    assert response.json()["Errors"][0]["Path"] == "Data.Initiation.DebtorAccount"
    own = clocked_bank.ledger.account("acc-alice-current").reference()
    body["Data"]["Initiation"]["DebtorAccount"] = own
    assert pay(clocked_payments, body, key="key-2").status_code == 201


def test_an_empty_initiation_will_do(clocked_payments) -> None:
    body = vrp()
    body["Data"]["Initiation"] = {}
    assert pay(clocked_payments, body).status_code == 201
    del body["Data"]["Initiation"]
    missing = pay(clocked_payments, body, key="key-2")
    assert missing.status_code == 400 and missing.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Field.Missing"
