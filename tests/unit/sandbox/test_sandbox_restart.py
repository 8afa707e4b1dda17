"""Payments of every kind survive a restart with a state file: replayed, they read back, book and list the same, and
what was still to come is paid when it falls due, by the restarted bank."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from pisp_requests import (
    AISP,
    PISP,
    balance,
    domestic,
    headers,
    international,
    international_scheduled,
    international_standing_order,
    request,
    scheduled,
    standing_order,
    transactions,
    vrp,
    who,
)

from gateway.sandbox.app import create_accounts_app, create_payments_app
from gateway.sandbox.data import Bank, build_bank

ACCOUNTS = [("acc-alice-current", "alice"), ("acc-alice-savings", "alice"), ("acc-bob-current", "bob")]


def every_kind(client, now: datetime) -> list[str]:
    """Make a payment of each kind from alice's current account; the path of each."""
    day = timedelta(days=1)
    made = [
        ("domestic-payments", request(domestic("10.00"), "c-1")),
        ("domestic-scheduled-payments", request(scheduled(now + day, "11.00"), "c-2")),
        ("domestic-standing-orders", request(standing_order(now + 2 * day, "12.00", NumberOfPayments="2"), "c-3")),
        ("international-payments", request(international("13.00", rate={"RateType": "Indicative"}), "c-4")),
        ("international-scheduled-payments", request(international_scheduled(now + 3 * day, "14.00"), "c-5")),
        ("international-standing-orders",
         request(international_standing_order(now + 4 * day, NumberOfPayments="2"), "c-6")),
        ("domestic-vrps", vrp("1.50", "vrp-1")),
        ("domestic-vrps", vrp("2.50", "vrp-1")),
    ]
    paths = []
    for number, (path, body) in enumerate(made):
        response = client.post(f"{PISP}/{path}", json=body, headers=headers() | {"x-idempotency-key": f"k{number}"})
        assert response.status_code == 201, response.text
        payment_id = next(v for k, v in response.json()["Data"].items() if k.endswith("Id") and k != "ConsentId")
        paths.append(f"{PISP}/{path}/{payment_id}")
    return paths


def snapshot(bank: Bank, paths: list[str], client_for) -> dict:
    """What the bank answers about the payments and the accounts."""
    pay, read = client_for(create_payments_app(bank)), client_for(create_accounts_app(bank))
    seen: dict = {}
    for path in paths:
        seen[path] = pay.get(path, headers=who()).json(), pay.get(f"{path}/payment-details", headers=who()).json()
    for account_id, customer in ACCOUNTS:
        seen[account_id] = (balance(read, account_id, customer), transactions(read, account_id, customer))
    for resource in ("scheduled-payments", "standing-orders"):
        seen[resource] = read.get(f"{AISP}/{resource}", headers=who()).json()["Data"]
    return seen


def lines(state: Path) -> list[dict]:
    return [orjson.loads(line) for line in state.read_bytes().splitlines()]


def test_every_kind_survives_a_restart(tmp_path: Path, client_for, seed: int, anchor: datetime, clock) -> None:
    state = tmp_path / "bank-state.jsonl"
    first = build_bank(seed, anchor, state_file=state, clock=clock)
    paths = every_kind(client_for(create_payments_app(first)), clock.now)
    clock.advance(days=1, hours=1)  # the domestic scheduled payment falls due
    before = snapshot(first, paths, client_for)
    assert [line["type"] for line in lines(state)] == [
        "domestic-payment", "domestic-scheduled-payment", "domestic-standing-order", "international-payment",
        "international-scheduled-payment", "international-standing-order", "domestic-vrp", "domestic-vrp",
        "execution"]
    assert [line["consent_id"] for line in lines(state)[:8]] == ["c-1", "c-2", "c-3", "c-4", "c-5", "c-6",
                                                                   "vrp-1", "vrp-1"]

    restarted = build_bank(seed, anchor, state_file=state, clock=clock)
    assert snapshot(restarted, paths, client_for) == before
    assert len(lines(state)) == 9  # replaying writes nothing

    # What was still to come is paid by the restarted bank, and written down; a second restart agrees.
    clock.advance(days=60)
    later = snapshot(restarted, paths, client_for)
    assert later[paths[4]][0]["Data"]["Status"] == "InitiationCompleted"  # the international scheduled payment
    assert later["acc-alice-current"][0] < before["acc-alice-current"][0]
    assert [line["type"] for line in lines(state)[9:]] == ["execution"] * 5  # 1 scheduled, 2 + 2 instalments
    assert snapshot(build_bank(seed, anchor, state_file=state, clock=clock), paths, client_for) == later


def test_after_a_restart_repeats_are_answered_and_others_still_refused(tmp_path: Path, client_for, seed: int,
                                                                       anchor: datetime, clock) -> None:
    state = tmp_path / "bank-state.jsonl"
    paths = every_kind(client_for(create_payments_app(build_bank(seed, anchor, state_file=state, clock=clock))),
                       clock.now)
    restarted = client_for(create_payments_app(build_bank(seed, anchor, state_file=state, clock=clock)))
    for path in paths:
        assert restarted.get(path, headers=who()).status_code == 200
        assert restarted.get(path, headers=who("bob")).status_code == 404
        assert restarted.get(f"{path}/payment-details", headers=who("bob")).status_code == 404
    again = restarted.post(f"{PISP}/domestic-standing-orders", headers=headers(),
                           json=request(standing_order(clock.now + timedelta(days=2), "12.00", NumberOfPayments="2"),
                                        "c-3"))
    assert again.status_code == 201 and again.json()["Data"]["DomesticStandingOrderId"] == paths[2].split("/")[-1]
    vrp_again = restarted.post(f"{PISP}/domestic-vrps", json=vrp("2.50", "vrp-1"),
                               headers=headers() | {"x-idempotency-key": "k7"})
    assert vrp_again.json()["Data"]["DomesticVRPId"] == paths[7].split("/")[-1]
    used = restarted.post(f"{PISP}/domestic-payments", json=request(domestic("99.00"), "c-1"), headers=headers())
    assert used.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.InvalidConsentStatus"


def test_domestic_payments_written_before_the_other_kinds_still_replay(tmp_path: Path, client_for, seed: int,
                                                                       anchor: datetime) -> None:
    """The state file's first format: one line per domestic payment, its two transaction ids at the top level."""
    initiation = domestic("4.20")
    state = tmp_path / "bank-state.jsonl"
    state.write_bytes(orjson.dumps({
        "type": "domestic-payment", "payment_id": "dp-0123456789abcdef0123456789abcdef", "customer_id": "alice",
        "debtor_account_id": "acc-alice-current", "consent_id": "pdc-old", "initiation": initiation,
        "created": "2026-06-01T10:00:00+00:00", "debit_transaction_id": "0d7c2f3e-1111-4aaa-8bbb-123456789abc",
        "credit_transaction_id": None}) + b"\n")
    bank = build_bank(seed, anchor, state_file=state)
    untouched = build_bank(seed, anchor)
    assert bank.ledger.balance("acc-alice-current") == untouched.ledger.balance("acc-alice-current") - 420
    answer = client_for(create_payments_app(bank)).get(
        f"{PISP}/domestic-payments/dp-0123456789abcdef0123456789abcdef", headers=who()).json()
    assert answer["Data"]["Initiation"] == initiation and answer["Data"]["ConsentId"] == "pdc-old"
    newest = transactions(client_for(create_accounts_app(bank)))[0]
    assert newest["TransactionId"] == "0d7c2f3e-1111-4aaa-8bbb-123456789abc"


@pytest.mark.parametrize(("line", "problem"), [
    ({"type": "execution", "payment_id": "dp-nope"}, "execution of unknown payment"),
    ({"type": "cheque", "payment_id": "chq-1"}, "unknown line type"),
    ({"type": "domestic-payment", "payment_id": "dp-x", "customer_id": "alice", "debtor_account_id": "acc-nope",
      "consent_id": "c", "request": {"Data": {"ConsentId": "c", "Initiation": {}}}, "created": "2026-06-01T10:00:00Z",
      "executions": []}, "unknown account"),
])
def test_a_state_file_the_bank_cannot_read_stops_it(tmp_path: Path, seed: int, anchor: datetime, line: dict,
                                                    problem: str) -> None:
    state = tmp_path / "bank-state.jsonl"
    state.write_bytes(b"\n" + orjson.dumps(line) + b"\n")
    with pytest.raises(ValueError, match=f"bank-state.jsonl:2: {problem}"):
        build_bank(seed, anchor, state_file=state)
