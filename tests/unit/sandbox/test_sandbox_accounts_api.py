"""Accounts service: login check and UK OB v3.1.11 account, balance and transaction reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from gateway.sandbox.data import Bank
from gateway.sandbox.web import PAGE_SIZE

AISP = "/open-banking/v3.1/aisp"
ALICE = {"x-bank-customer-id": "alice"}
BOB = {"x-bank-customer-id": "bob"}
ACCOUNT_PATHS = (
    f"{AISP}/accounts",
    f"{AISP}/accounts/acc-alice-current",
    f"{AISP}/accounts/acc-alice-current/balances",
    f"{AISP}/accounts/acc-alice-current/transactions",
)


def test_healthz(accounts_client) -> None:
    response = accounts_client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize(("username", "password"), [("alice", "alice-pass"), ("bob", "bob-pass")])
def test_authenticate_accepts_the_demo_passwords(accounts_client, username: str, password: str) -> None:
    response = accounts_client.post("/internal/authenticate", json={"username": username, "password": password})
    assert response.status_code == 200
    assert response.json()["customer_id"] == username
    assert response.json()["display_name"] in ("Alice Smith", "Bob Jones")


@pytest.mark.parametrize(
    ("username", "password"), [("alice", "bob-pass"), ("alice", ""), ("mallory", "alice-pass"), ("", "")]
)
def test_authenticate_refuses_wrong_passwords_and_unknown_users(accounts_client, username: str, password: str) -> None:
    response = accounts_client.post("/internal/authenticate", json={"username": username, "password": password})
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_credentials"}


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"username": "alice"}', b'{"username": 1, "password": 2}'])
def test_authenticate_refuses_malformed_requests(accounts_client, body: bytes) -> None:
    response = accounts_client.post("/internal/authenticate", content=body)
    assert response.status_code == 400


@pytest.mark.parametrize("path", ACCOUNT_PATHS)
def test_customer_header_is_required(accounts_client, assert_ob, path: str) -> None:
    response = accounts_client.get(path)
    assert response.status_code == 403
    assert_ob(response.json(), "aisp", "OBErrorResponse1")
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Header.Missing"


def test_unknown_customer_is_forbidden(accounts_client, assert_ob) -> None:
    response = accounts_client.get(f"{AISP}/accounts", headers={"x-bank-customer-id": "mallory"})
    assert response.status_code == 403
    assert_ob(response.json(), "aisp", "OBErrorResponse1")


@pytest.mark.parametrize("path", ACCOUNT_PATHS[1:])
def test_another_customers_account_is_not_found(accounts_client, assert_ob, path: str) -> None:
    response = accounts_client.get(path, headers=BOB)
    assert response.status_code == 404
    assert_ob(response.json(), "aisp", "OBErrorResponse1")
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.NotFound"


def test_unknown_paths_get_an_ob_not_found(accounts_client, assert_ob) -> None:
    response = accounts_client.get(f"{AISP}/loans", headers=ALICE)
    assert response.status_code == 404
    assert_ob(response.json(), "aisp", "OBErrorResponse1")


def test_accounts_lists_full_records(accounts_client, assert_ob) -> None:
    response = accounts_client.get(f"{AISP}/accounts", headers=ALICE)
    assert response.status_code == 200
    body = response.json()
    assert_ob(body, "aisp", "OBReadAccount6")
    assert body["Meta"] == {"TotalPages": 1} and body["Links"]["Self"].endswith(f"{AISP}/accounts")
    accounts = {a["AccountId"]: a for a in body["Data"]["Account"]}
    assert set(accounts) == {"acc-alice-current", "acc-alice-savings", "acc-alice-card"}
    current = accounts["acc-alice-current"]
    assert current["AccountSubType"] == "CurrentAccount" and current["Currency"] == "GBP"
    assert current["Account"][0]["SchemeName"] == "UK.OBIE.SortCodeAccountNumber"
    assert current["Account"][0]["Name"] == "Alice Smith"
    assert len(current["Account"][0]["Identification"]) == 14
    card = accounts["acc-alice-card"]["Account"][0]
    assert card["SchemeName"] == "UK.OBIE.PAN" and len(card["Identification"]) == 16
    assert "SecondaryIdentification" in accounts["acc-alice-savings"]["Account"][0]
    assert accounts["acc-alice-savings"]["Account"][0]["Name"] == "Alice Smith & Daniel Reid"  # a joint account


def test_accounts_can_be_narrowed_by_id(accounts_client) -> None:
    response = accounts_client.get(f"{AISP}/accounts?account_ids=acc-alice-card,acc-bob-current", headers=ALICE)
    assert [a["AccountId"] for a in response.json()["Data"]["Account"]] == ["acc-alice-card"]


def test_one_account(accounts_client, assert_ob) -> None:
    response = accounts_client.get(f"{AISP}/accounts/acc-bob-savings", headers=BOB)
    assert response.status_code == 200
    assert_ob(response.json(), "aisp", "OBReadAccount6")
    assert [a["AccountId"] for a in response.json()["Data"]["Account"]] == ["acc-bob-savings"]


@pytest.mark.parametrize(
    ("customer", "account_id"),
    [
        ("alice", "acc-alice-current"),
        ("alice", "acc-alice-savings"),
        ("alice", "acc-alice-card"),
        ("bob", "acc-bob-current"),
        ("bob", "acc-bob-savings"),
    ],
)
def test_balance_matches_the_latest_running_balance(accounts_client, assert_ob, customer: str, account_id: str) -> None:
    headers = {"x-bank-customer-id": customer}
    body = accounts_client.get(f"{AISP}/accounts/{account_id}/balances", headers=headers).json()
    assert_ob(body, "aisp", "OBReadBalance1")
    balances = {b["Type"]: b for b in body["Data"]["Balance"]}
    latest = accounts_client.get(f"{AISP}/accounts/{account_id}/transactions", headers=headers).json()
    newest = latest["Data"]["Transaction"][0]
    booked = balances["InterimBooked"]
    assert booked["Amount"] == newest["Balance"]["Amount"]
    assert booked["CreditDebitIndicator"] == newest["Balance"]["CreditDebitIndicator"]
    assert booked["DateTime"] == newest["BookingDateTime"]
    assert "InterimAvailable" in balances


def test_card_balance_shows_its_credit_line(bank: Bank, accounts_client) -> None:
    body = accounts_client.get(f"{AISP}/accounts/acc-alice-card/balances", headers=ALICE).json()
    available = next(b for b in body["Data"]["Balance"] if b["Type"] == "InterimAvailable")
    card = bank.ledger.account("acc-alice-card")
    assert available["CreditLine"][0]["Included"] is True
    assert available["CreditLine"][0]["Type"] == "Credit"
    expected = bank.ledger.balance(card.account_id) + card.credit_limit
    assert available["Amount"]["Amount"] == f"{expected // 100}.{expected % 100:02d}"


def test_transactions_are_full_records_newest_first_a_page_at_a_time(bank: Bank, accounts_client, assert_ob) -> None:
    body = accounts_client.get(f"{AISP}/accounts/acc-alice-current/transactions", headers=ALICE).json()
    assert_ob(body, "aisp", "OBReadTransaction6")
    records = body["Data"]["Transaction"]
    times = [datetime.fromisoformat(r["BookingDateTime"]) for r in records]
    assert times == sorted(times, reverse=True)
    history = bank.ledger.entries("acc-alice-current")
    assert len(history) > PAGE_SIZE and len(records) == PAGE_SIZE
    assert [r["TransactionId"] for r in records] == [e.transaction_id for e in reversed(history[-PAGE_SIZE:])]
    assert body["Meta"]["TotalPages"] == -(-len(history) // PAGE_SIZE)
    assert body["Meta"]["FirstAvailableDateTime"] == history[0].booked.isoformat()
    assert body["Meta"]["LastAvailableDateTime"] == records[0]["BookingDateTime"]
    assert body["Links"]["Next"].endswith("/accounts/acc-alice-current/transactions?page=2")
    card = next(r for r in records if "CardInstrument" in r)
    assert card["CardInstrument"]["CardSchemeName"] == "VISA" and card["MerchantDetails"]["MerchantName"]
    transfer = next(r for r in records if "CreditorAccount" in r)
    assert {"SchemeName", "Identification", "Name"} <= set(transfer["CreditorAccount"])
    assert transfer["CreditorAgent"]["SchemeName"] == "UK.OBIE.BICFI"


def test_card_account_transactions_validate(accounts_client, assert_ob) -> None:
    body = accounts_client.get(f"{AISP}/accounts/acc-alice-card/transactions", headers=ALICE).json()
    assert_ob(body, "aisp", "OBReadTransaction6")
    assert {r["CreditDebitIndicator"] for r in body["Data"]["Transaction"]} == {"Credit", "Debit"}


def test_transactions_filter_by_booking_date(accounts_client, every_page, anchor: datetime) -> None:
    path = f"{AISP}/accounts/acc-bob-current/transactions"
    everything = [r for page in every_page(accounts_client, path, BOB) for r in page["Data"]["Transaction"]]
    since, until = anchor - timedelta(days=150), anchor - timedelta(days=30)
    query = f"fromBookingDateTime={quote(since.isoformat())}&toBookingDateTime={quote(until.isoformat())}"
    pages = every_page(accounts_client, f"{path}?{query}", BOB)
    some = [r for page in pages for r in page["Data"]["Transaction"]]
    expected = [r for r in everything if since <= datetime.fromisoformat(r["BookingDateTime"]) <= until]
    assert some == expected and PAGE_SIZE < len(some) < len(everything)
    for number, page in enumerate(pages[:-1], 2):  # each page links to the next with the same window
        assert parse_qs(urlsplit(page["Links"]["Next"]).query) == parse_qs(f"{query}&page={number}")


@pytest.mark.parametrize(
    "value",
    [
        "2026-05-01T00:00:00+00:00",
        "2026-05-01T01:00:00+01:00",
        "2026-05-01T00:00:00Z",
        "2026-05-01T00:00:00",
        "2026-05-01 00:00:00",
        "2026-05-01",
    ],
)
def test_from_booking_date_time_forms(accounts_client, value: str) -> None:
    path = f"{AISP}/accounts/acc-bob-current/transactions?fromBookingDateTime={quote(value)}"
    records = accounts_client.get(path, headers=BOB).json()["Data"]["Transaction"]
    start = datetime(2026, 5, 1, tzinfo=UTC)
    assert records and all(datetime.fromisoformat(r["BookingDateTime"]) >= start for r in records)


def test_an_unencoded_plus_in_the_zone_is_understood(accounts_client) -> None:
    path = f"{AISP}/accounts/acc-bob-current/transactions?fromBookingDateTime=2026-05-01T01:00:00+01:00"
    assert accounts_client.get(path, headers=BOB).status_code == 200


@pytest.mark.parametrize(
    "query",
    ["fromBookingDateTime=yesterday", "toBookingDateTime=2026-13-01T00:00:00Z",
     "fromBookingDateTime=2026-05-02T00:00:00Z&toBookingDateTime=2026-05-01T00:00:00Z"],
)
def test_bad_dates_are_refused(accounts_client, assert_ob, query: str) -> None:
    response = accounts_client.get(f"{AISP}/accounts/acc-bob-current/transactions?{query}", headers=BOB)
    assert response.status_code == 400
    assert_ob(response.json(), "aisp", "OBErrorResponse1")
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Field.InvalidDate"
