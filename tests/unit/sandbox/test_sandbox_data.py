"""Seeded data: deterministic, recent, plentiful and internally consistent."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from gateway.sandbox.data import Bank, build_bank, history_start
from gateway.sandbox.ledger import BANK_BIC

CUSTOMERS = ("alice", "bob")


def snapshot(bank: Bank) -> list:
    ledger = bank.ledger
    books = [
        (account.to_ob(), [entry.to_ob(account.currency) for entry in ledger.entries(account.account_id)])
        for customer_id in bank.customers
        for account in ledger.accounts_of(customer_id)
    ]
    return [books, bank.records, bank.parties, bank.co_holders]


def records(bank: Bank, name: str, customer_id: str) -> list[dict]:
    return [r for a in bank.ledger.accounts_of(customer_id) for r in bank.records[name].get(a.account_id, [])]


def luhn_ok(number: str) -> bool:
    total = 0
    for i, digit in enumerate(reversed(number)):
        n = int(digit) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def test_same_seed_and_anchor_give_identical_data(bank: Bank, seed: int, anchor: datetime) -> None:
    assert snapshot(build_bank(seed, anchor)) == snapshot(bank)


def test_another_seed_keeps_account_ids_but_changes_the_details(bank: Bank, seed: int, anchor: datetime) -> None:
    other = build_bank(seed + 1, anchor)
    ids = [[a.account_id for a in b.ledger.accounts_of(c)] for b in (bank, other) for c in CUSTOMERS]
    assert ids[:2] == ids[2:]
    assert snapshot(other) != snapshot(bank)


def test_anchor_defaults_to_today_at_midnight_utc() -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert build_bank().anchor in (today, today + timedelta(days=1))


def test_anchor_is_truncated_to_its_utc_day(seed: int, anchor: datetime) -> None:
    assert build_bank(seed, anchor + timedelta(hours=13, minutes=5)).anchor == anchor


@pytest.mark.parametrize("customer_id", CUSTOMERS)
def test_each_customer_has_gbp_accounts_and_six_months_of_varied_history(
    bank: Bank, anchor: datetime, customer_id: str
) -> None:
    accounts = bank.ledger.accounts_of(customer_id)
    assert len(accounts) >= 2
    assert {a.currency for a in accounts} == {"GBP"}
    assert {"CurrentAccount", "Savings"} <= {a.sub_type for a in accounts}
    entries = [e for a in accounts for e in bank.ledger.entries(a.account_id)]
    assert all(history_start(anchor) <= e.booked < anchor for e in entries)
    assert len(entries) >= 60
    assert any(e.amount > 0 for e in entries) and any(e.amount < 0 for e in entries)
    codes = {e.proprietary_code for e in entries}
    assert {"BGC", "SO", "DD", "DEB", "FPO", "FPI", "TFR", "INT"} <= codes
    assert min(e.booked for e in entries) < history_start(anchor) + timedelta(days=1)  # from the very first day
    records = [e.to_ob("GBP") for e in entries]
    salaries = [r for r in records if r["ProprietaryBankTransactionCode"]["Code"] == "BGC"]
    assert len(salaries) >= 5 and all(r["DebtorAccount"]["Name"] for r in salaries)
    purchases = [r for r in records if "MerchantDetails" in r]
    assert len(purchases) >= 30
    assert all(len(r["CardInstrument"]["Identification"]) == 16 for r in purchases)
    assert any("CreditorAccount" in r and "CreditorAgent" in r for r in records)


def test_alice_has_a_credit_card_identified_by_its_full_pan(bank: Bank) -> None:
    card = next(a for a in bank.ledger.accounts_of("alice") if a.sub_type == "CreditCard")
    assert card.scheme == "UK.OBIE.PAN"
    assert len(card.identification) == 16 and luhn_ok(card.identification)
    assert card.credit_limit > 0


def test_sort_code_account_numbers_have_fourteen_digits(bank: Bank) -> None:
    for customer_id in CUSTOMERS:
        for account in bank.ledger.accounts_of(customer_id):
            if account.scheme == "UK.OBIE.SortCodeAccountNumber":
                assert account.identification.isdigit() and len(account.identification) == 14


def test_running_balances_add_up_from_the_opening_balance(bank: Bank) -> None:
    for customer_id in CUSTOMERS:
        for account in bank.ledger.accounts_of(customer_id):
            balance = account.opening_balance
            for entry in bank.ledger.entries(account.account_id):
                balance += entry.amount
                assert entry.balance == balance
            assert bank.ledger.balance(account.account_id) == balance


def test_transfers_between_customers_post_on_both_sides(bank: Bank) -> None:
    def named(account_id: str, side: str, name: str) -> list:
        return [e for e in bank.ledger.entries(account_id) if e.details.get(side, {}).get("Name") == name]

    bob_out = named("acc-bob-current", "CreditorAccount", "Alice Smith")
    alice_in = named("acc-alice-current", "DebtorAccount", "Bob Jones")
    assert bob_out and [e.booked for e in bob_out] == [e.booked for e in alice_in]


def test_transaction_ids_are_unique(bank: Bank) -> None:
    ledger = bank.ledger
    ids = [e.transaction_id for c in CUSTOMERS for a in ledger.accounts_of(c) for e in ledger.entries(a.account_id)]
    assert len(ids) == len(set(ids))


def test_passwords_are_kept_only_as_scrypt_digests(bank: Bank) -> None:
    login = bank.credentials.authenticate("alice", "alice-pass")
    assert login is not None
    assert {f.name for f in dataclasses.fields(login)} == {"customer_id", "display_name", "salt", "digest"}
    assert "alice-pass" not in repr(vars(bank.credentials))


def test_history_starts_on_the_first_day_of_the_sixth_whole_month_before_the_anchor() -> None:
    assert history_start(datetime(2026, 6, 1, tzinfo=UTC)) == datetime(2025, 12, 1, tzinfo=UTC)
    assert history_start(datetime(2026, 3, 31, tzinfo=UTC)) == datetime(2025, 9, 1, tzinfo=UTC)
    assert history_start(datetime(2026, 1, 15, tzinfo=UTC)) == datetime(2025, 7, 1, tzinfo=UTC)


@pytest.mark.parametrize(("customer_id", "bills", "orders"), [("alice", 5, 2), ("bob", 4, 2)])
def test_each_customer_has_payees_mandates_orders_products_offers_and_a_party(
    bank: Bank, customer_id: str, bills: int, orders: int
) -> None:
    accounts = bank.ledger.accounts_of(customer_id)
    assert len(records(bank, "Beneficiary", customer_id)) >= 2
    assert len(records(bank, "DirectDebit", customer_id)) == bills  # alice's include her card's repayments
    assert len(records(bank, "StandingOrder", customer_id)) == orders
    assert len(records(bank, "ScheduledPayment", customer_id)) >= 1
    assert [p["AccountId"] for p in records(bank, "Product", customer_id)] == [a.account_id for a in accounts]
    assert len(records(bank, "Offer", customer_id)) >= 1
    assert bank.parties[customer_id]["Name"] == bank.customers[customer_id].display_name
    [joint] = [a for a in accounts if a.account_id in bank.co_holders]
    assert len(bank.co_holders[joint.account_id]) == 1 and joint.sub_type == "Savings"


def test_every_record_names_an_account_of_its_customer(bank: Bank) -> None:
    owner = {a.account_id: c for c in CUSTOMERS for a in bank.ledger.accounts_of(c)}
    for name, by_account in bank.records.items():
        for account_id, found in by_account.items():
            assert account_id in owner, name
            assert all(record["AccountId"] == account_id for record in found), name


def test_a_counterparty_at_another_bank_always_has_the_same_account(bank: Bank) -> None:
    accounts: dict[str, set[str]] = {}
    for customer_id in CUSTOMERS:
        for account in bank.ledger.accounts_of(customer_id):
            for entry in bank.ledger.entries(account.account_id):
                for side in ("Creditor", "Debtor"):
                    if entry.details.get(f"{side}Agent", {}).get("Identification") not in (None, BANK_BIC):
                        party = entry.details[f"{side}Account"]
                        accounts.setdefault(party["Name"], set()).add(party["Identification"])
    assert len(accounts) > 15
    assert {name: ids for name, ids in accounts.items() if len(ids) > 1} == {}


def test_joint_savings_are_paid_into_by_both_holders(bank: Bank) -> None:
    for customer_id, partner in (("alice", "Daniel Reid"), ("bob", "Hannah Jones")):
        entries = bank.ledger.entries(f"acc-{customer_id}-savings")
        payers = {e.details["DebtorAccount"]["Name"] for e in entries if "DebtorAccount" in e.details}
        assert payers == {bank.customers[customer_id].display_name, partner}
        assert len([e for e in entries if e.details.get("DebtorAccount", {}).get("Name") == partner]) == 6


DEMO_SEED = 1  # `make demo` (python -m gateway.sandbox) builds the bank with seed 1, anchored today


def test_alice_always_starts_with_at_least_10000_pounds_available(bank: Bank) -> None:
    """Whatever day the demo starts on (every third day over two years, so every payday and month end in turn),
    alice's current account can pay 10,000 GBP; her history stays internally consistent all the same."""
    assert bank.ledger.available("acc-alice-current") >= 1_000_000  # the tests' bank too
    for offset in range(0, 730, 3):
        anchor = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=offset)
        ledger = build_bank(DEMO_SEED, anchor).ledger
        assert ledger.available("acc-alice-current") >= 1_000_000, anchor
        opening = ledger.account("acc-alice-current").opening_balance
        entries = ledger.entries("acc-alice-current")
        assert opening + sum(entry.amount for entry in entries) == ledger.balance("acc-alice-current")
