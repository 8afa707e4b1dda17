"""Statements: six monthly statements per account whose figures reconcile with the books, their transactions,
and the statement file (a PDF) with Accept negotiation.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from gateway.sandbox.app import create_accounts_app
from gateway.sandbox.data import Bank, build_bank

AISP = "/open-banking/v3.1/aisp"
ACCOUNTS = [("alice", "acc-alice-current"), ("alice", "acc-alice-savings"), ("alice", "acc-alice-card"),
            ("bob", "acc-bob-current"), ("bob", "acc-bob-savings")]
MAY = "stmt-acc-alice-current-202605"
FILE = f"{AISP}/accounts/acc-alice-current/statements/{MAY}/file"


def who(customer: str) -> dict[str, str]:
    return {"x-bank-customer-id": customer}


def signed(amount: dict, indicator: str) -> int:
    pence = int(Decimal(amount["Amount"]) * 100)
    return pence if indicator == "Credit" else -pence


def figures(statement: dict) -> dict[str, int]:
    return {a["Type"].removeprefix("UK.OBIE."): signed(a["Amount"], a["CreditDebitIndicator"])
            for a in statement["StatementAmount"]}


def statements_of(client, customer: str, account_id: str) -> list[dict]:
    return client.get(f"{AISP}/accounts/{account_id}/statements", headers=who(customer)).json()["Data"]["Statement"]


def statement_transactions(client, every_page, customer: str, statement: dict, query: str = "") -> list[dict]:
    url = f"{AISP}/accounts/{statement['AccountId']}/statements/{statement['StatementId']}/transactions{query}"
    return [r for page in every_page(client, url, who(customer)) for r in page["Data"]["Transaction"]]


@pytest.mark.parametrize(("customer", "account_id"), ACCOUNTS)
def test_six_monthly_statements_for_the_months_before_the_anchor(accounts_client, anchor: datetime, customer: str,
                                                                 account_id: str) -> None:
    found = statements_of(accounts_client, customer, account_id)
    starts = [datetime.fromisoformat(s["StartDateTime"]) for s in found]
    assert [f"{start:%Y-%m}" for start in starts] == ["2026-05", "2026-04", "2026-03", "2026-02", "2026-01", "2025-12"]
    for statement, start in zip(found, starts, strict=True):
        end = datetime.fromisoformat(statement["EndDateTime"])
        assert start.day == 1 and start.hour == 0 and (end + timedelta(seconds=1)).day == 1
        assert end < datetime.fromisoformat(statement["CreationDateTime"]) <= anchor
        assert statement["Type"] == "RegularPeriodic"
    assert len({s["StatementId"] for s in found}) == 6


@pytest.mark.parametrize(("customer", "account_id"), ACCOUNTS)
def test_statement_amounts_reconcile_with_their_transactions(accounts_client, every_page, customer: str,
                                                             account_id: str) -> None:
    found = list(reversed(statements_of(accounts_client, customer, account_id)))  # oldest first
    for previous, statement in zip([None, *found], found):
        amounts = figures(statement)
        records = statement_transactions(accounts_client, every_page, customer, statement)
        moves = [signed(r["Amount"], r["CreditDebitIndicator"]) for r in records]
        assert amounts["TotalCredits"] == sum(m for m in moves if m > 0)
        assert amounts["TotalDebits"] == sum(m for m in moves if m < 0)
        assert amounts["ClosingBalance"] == amounts["StartingBalance"] + sum(moves)
        if records:  # newest first: the newest one's running balance is where the month closed
            assert amounts["ClosingBalance"] == signed(records[0]["Balance"]["Amount"],
                                                       records[0]["Balance"]["CreditDebitIndicator"])
        if previous is not None:
            assert amounts["StartingBalance"] == figures(previous)["ClosingBalance"]


def test_statement_figures_include_interest_and_credit_limits(bank: Bank, accounts_client) -> None:
    savings = statements_of(accounts_client, "alice", "acc-alice-savings")[0]
    interest = [e.amount for e in bank.ledger.entries("acc-alice-savings")
                if e.proprietary_code == "INT" and e.booked.month == 5]
    assert signed(savings["StatementInterest"][0]["Amount"], "Credit") == sum(interest) > 0
    card = statements_of(accounts_client, "alice", "acc-alice-card")[0]
    assert figures(card)["CreditLimit"] == bank.ledger.account("acc-alice-card").credit_limit
    assert figures(card)["ClosingBalance"] < 0  # owed


def test_statement_transactions_are_the_accounts_entries_in_its_period(accounts_client, every_page) -> None:
    [statement] = accounts_client.get(f"{AISP}/accounts/acc-alice-current/statements/{MAY}",
                                      headers=who("alice")).json()["Data"]["Statement"]
    start, end = statement["StartDateTime"], statement["EndDateTime"]
    records = statement_transactions(accounts_client, every_page, "alice", statement)
    window = f"?fromBookingDateTime={start[:19]}Z&toBookingDateTime={end[:19]}Z"
    url = f"{AISP}/accounts/acc-alice-current/transactions{window}"
    same = [r for page in every_page(accounts_client, url, who("alice")) for r in page["Data"]["Transaction"]]
    assert records == same and len(records) > 20
    assert {tuple(r["StatementReference"]) for r in records} == {(statement["StatementReference"],)}


def test_statement_transactions_can_be_narrowed_by_booking_date(accounts_client, every_page) -> None:
    statement = statements_of(accounts_client, "bob", "acc-bob-current")[0]
    query = "?fromBookingDateTime=2026-05-10T00:00:00Z&toBookingDateTime=2026-06-20T00:00:00Z"
    some = statement_transactions(accounts_client, every_page, "bob", statement, query)
    everything = statement_transactions(accounts_client, every_page, "bob", statement)
    assert some == [r for r in everything if r["BookingDateTime"] >= "2026-05-10"] and 0 < len(some) < len(everything)


def test_statements_can_be_narrowed_by_statement_date(accounts_client) -> None:
    path = f"{AISP}/statements?fromStatementDateTime=2026-03-01&toStatementDateTime=2026-04-30T23:59:59Z"
    found = accounts_client.get(path, headers=who("bob")).json()["Data"]["Statement"]
    assert sorted({s["StartDateTime"][:7] for s in found}) == ["2026-03", "2026-04"]
    assert len(found) == 2 * 2  # bob's two accounts
    bad = accounts_client.get(f"{AISP}/statements?fromStatementDateTime=May", headers=who("bob"))
    assert bad.status_code == 400 and bad.json()["Errors"][0]["Path"] == "fromStatementDateTime"


@pytest.mark.parametrize("tail", ["", "/file", "/transactions"])
def test_an_unknown_statement_is_not_found(accounts_client, assert_ob, tail: str) -> None:
    # a malformed id, another account's statement, a month before the history
    unknown = ("stmt-acc-alice-current-2026-04", "stmt-acc-alice-savings-202605", "stmt-acc-alice-current-202505")
    for statement_id in unknown:
        response = accounts_client.get(f"{AISP}/accounts/acc-alice-current/statements/{statement_id}{tail}",
                                       headers=who("alice"))
        assert response.status_code == 404
        assert_ob(response.json(), "aisp", "OBErrorResponse1")
        assert response.json()["Errors"][0]["Path"] == "StatementId"


# -- the statement file --------------------------------------------------------------------------------------------

def test_the_statement_file_is_a_pdf_with_a_sound_cross_reference_table(accounts_client) -> None:
    response = accounts_client.get(FILE, headers=who("alice"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="statement-acc-alice-current-2026-05.pdf"'
    pdf = response.content
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF")
    startxref = int(re.search(rb"startxref\n(\d+)\n%%EOF$", pdf).group(1))
    assert pdf[startxref:].startswith(b"xref\n")
    header = re.match(rb"xref\n0 (\d+)\n", pdf[startxref:])
    count = int(header.group(1))
    rows = pdf[startxref + header.end():].split(b"\n")[:count]
    assert rows[0] == b"0000000000 65535 f " and all(len(row) == 19 for row in rows)  # 20 bytes with the newline
    for number, row in enumerate(rows[1:], 1):
        offset, generation, kind = row.split()
        assert kind == b"n" and pdf[int(offset):].startswith(b"%d 0 obj\n" % number)
    assert re.search(rb"trailer\n<< /Size %d /Root 1 0 R" % count, pdf)
    length = int(re.search(rb"<< /Length (\d+) >>\nstream\n", pdf).group(1))
    stream = pdf.split(b"stream\n", 1)[1]
    assert stream[length:].startswith(b"\nendstream")


def test_the_statement_file_states_the_statements_figures(accounts_client) -> None:
    [statement] = accounts_client.get(FILE.removesuffix("/file"), headers=who("alice")).json()["Data"]["Statement"]
    pdf = accounts_client.get(FILE, headers=who("alice")).content
    amounts = {a["Type"]: a["Amount"]["Amount"] for a in statement["StatementAmount"]}
    for label, kind in (("Opening balance", "StartingBalance"), ("Money in", "TotalCredits"),
                        ("Money out", "TotalDebits"), ("Closing balance", "ClosingBalance")):
        figure = f"{Decimal(amounts[f'UK.OBIE.{kind}']):,.2f}"
        assert f"({label}: {figure} GBP) Tj".encode() in pdf
    for text in (b"(Sandbox Bank plc: statement) Tj", b"(Customer: Alice Smith) Tj",
                 b"(Period: 01 May 2026 to 31 May 2026) Tj", b"account number "):
        assert text in pdf


def test_a_card_statement_file_never_shows_the_whole_card_number(bank: Bank, accounts_client) -> None:
    card = bank.ledger.account("acc-alice-card")
    pdf = accounts_client.get(f"{AISP}/accounts/acc-alice-card/statements/stmt-acc-alice-card-202604/file",
                              headers=who("alice")).content
    assert card.identification.encode() not in pdf
    assert f"card ending {card.identification[-4:]}".encode() in pdf


def test_the_statement_file_is_the_same_every_time(client_for, seed: int, anchor: datetime,
                                                   accounts_client) -> None:
    again = client_for(create_accounts_app(build_bank(seed, anchor)))
    assert again.get(FILE, headers=who("alice")).content == accounts_client.get(FILE, headers=who("alice")).content


@pytest.mark.parametrize("accept", [
    None, "*/*", "application/*", "application/pdf", "application/pdf;q=0.5", "application/json, application/pdf;q=0.1",
    "text/html, */*;q=0.1", "APPLICATION/PDF", "application/json;q=0.9, application/*;q=0.2",
])
def test_accept_headers_that_allow_a_pdf_get_it(accounts_client, accept: str | None) -> None:
    headers = who("alice") | ({"accept": accept} if accept is not None else {})
    response = accounts_client.get(FILE, headers=headers)
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")


@pytest.mark.parametrize("accept", [
    "application/json", "text/*", "application/pdf;q=0", "application/json, */*;q=0", "application/pdf;q=0, */*",
    "application/*;q=0, */*;q=1", "image/png, text/plain",
])
def test_accept_headers_that_exclude_a_pdf_get_406(accounts_client, assert_ob, accept: str) -> None:
    response = accounts_client.get(FILE, headers=who("alice") | {"accept": accept})
    assert response.status_code == 406
    assert_ob(response.json(), "aisp", "OBErrorResponse1")
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Header.Invalid"
    assert response.json()["Errors"][0]["Path"] == "Accept"
