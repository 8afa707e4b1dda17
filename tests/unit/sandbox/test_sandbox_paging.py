"""Every list answer is paged: `page` picks the page, Links lead through all of them, Meta says how many there are.

Most tests use a bank whose pages hold 2 records, so that short lists span several pages.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.sandbox.app import create_accounts_app
from gateway.sandbox.data import Bank

AISP = "/open-banking/v3.1/aisp"
ALICE = {"x-bank-customer-id": "alice"}
SMALL = 2
# (path, OB Data array name)
LISTS = [
    (f"{AISP}/accounts", "Account"),
    (f"{AISP}/balances", "Balance"),
    (f"{AISP}/transactions", "Transaction"),
    (f"{AISP}/beneficiaries", "Beneficiary"),
    (f"{AISP}/direct-debits", "DirectDebit"),
    (f"{AISP}/statements", "Statement"),
    (f"{AISP}/products", "Product"),
    (f"{AISP}/accounts/acc-alice-current/transactions", "Transaction"),
    (f"{AISP}/accounts/acc-alice-current/statements", "Statement"),
    (f"{AISP}/accounts/acc-alice-current/statements/stmt-acc-alice-current-202605/transactions", "Transaction"),
]


@pytest.fixture
def small_pages(bank: Bank, client_for):
    return client_for(create_accounts_app(bank, page_size=SMALL))


def records(answers: list[dict], name: str) -> list[dict]:
    return [record for answer in answers for record in answer["Data"][name]]


@pytest.mark.parametrize(("path", "name"), LISTS)
def test_links_lead_through_every_page_to_every_record_once(small_pages, accounts_client, every_page,
                                                            path: str, name: str) -> None:
    expected = records(every_page(accounts_client, path, ALICE), name)
    answers = every_page(small_pages, path, ALICE)
    pages = -(-len(expected) // SMALL)
    assert pages > 1 and len(answers) == pages
    assert records(answers, name) == expected
    for number, answer in enumerate(answers, 1):
        assert answer["Meta"]["TotalPages"] == pages
        assert len(answer["Data"][name]) == (SMALL if number < pages else len(expected) - SMALL * (pages - 1))
        links = answer["Links"]
        assert parse_qs(urlsplit(links["First"]).query)["page"] == ["1"]
        assert parse_qs(urlsplit(links["Last"]).query)["page"] == [str(pages)]
        assert ("Prev" in links) == (number > 1) and ("Next" in links) == (number < pages)
        for link in links.values():
            assert urlsplit(link)[:3] == ("http", "bank.test", path)


def test_prev_links_lead_back_through_the_same_pages(small_pages, every_page) -> None:
    path = f"{AISP}/accounts/acc-alice-current/statements"
    forwards = every_page(small_pages, path, ALICE)
    backwards = [small_pages.get(forwards[-1]["Links"]["Self"], headers=ALICE).json()]
    while "Prev" in backwards[-1]["Links"]:
        backwards.append(small_pages.get(backwards[-1]["Links"]["Prev"], headers=ALICE).json())
    assert [answer["Data"] for answer in reversed(backwards)] == [answer["Data"] for answer in forwards]


def test_links_keep_the_other_query_parameters(small_pages) -> None:
    query = "account_ids=acc-alice-current,acc-alice-savings&fromBookingDateTime=2026-03-01T00:00:00Z"
    answer = small_pages.get(f"{AISP}/transactions?{query}&page=2", headers=ALICE).json()
    assert answer["Links"]["Self"].endswith(f"{AISP}/transactions?{query}&page=2")
    asked = parse_qs(query)
    for link in ("First", "Prev", "Next", "Last"):
        params = parse_qs(urlsplit(answer["Links"][link]).query)
        assert params.pop("page") and params == asked
    assert {r["AccountId"] for r in answer["Data"]["Transaction"]} <= {"acc-alice-current", "acc-alice-savings"}


def test_a_single_page_has_only_a_self_link(accounts_client) -> None:
    answer = accounts_client.get(f"{AISP}/accounts?page=1", headers=ALICE).json()
    assert answer["Links"] == {"Self": f"http://bank.test{AISP}/accounts?page=1"}
    assert answer["Meta"] == {"TotalPages": 1}


def test_an_empty_list_is_one_empty_page(accounts_client) -> None:
    answer = accounts_client.get(f"{AISP}/accounts/acc-alice-savings/standing-orders", headers=ALICE).json()
    assert answer["Data"] == {"StandingOrder": []}
    assert answer["Meta"] == {"TotalPages": 1} and set(answer["Links"]) == {"Self"}


def test_the_last_page_can_be_asked_for_directly(small_pages) -> None:
    first = small_pages.get(f"{AISP}/beneficiaries", headers=ALICE).json()
    last = small_pages.get(first["Links"]["Last"], headers=ALICE).json()
    assert last["Data"]["Beneficiary"] and "Next" not in last["Links"]
    assert last["Links"]["Self"] == first["Links"]["Last"]


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "", "01", "%201", "99999999999999999999"])
def test_pages_that_are_not_whole_positive_numbers_are_refused(small_pages, assert_ob, page: str) -> None:
    response = small_pages.get(f"{AISP}/statements?page={page}", headers=ALICE)
    assert response.status_code == 400
    assert_ob(response.json(), "aisp", "OBErrorResponse1")
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Field.Invalid"
    assert response.json()["Errors"][0]["Path"] == "page"


@pytest.mark.parametrize("path", [f"{AISP}/statements", f"{AISP}/accounts/acc-alice-savings/direct-debits"])
def test_a_page_past_the_last_is_refused(small_pages, path: str) -> None:
    last = small_pages.get(path, headers=ALICE).json()["Meta"]["TotalPages"]
    assert small_pages.get(f"{path}?page={last}", headers=ALICE).status_code == 200
    response = small_pages.get(f"{path}?page={last + 1}", headers=ALICE)
    assert response.status_code == 400 and response.json()["Errors"][0]["Path"] == "page"
