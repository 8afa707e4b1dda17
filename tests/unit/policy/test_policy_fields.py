"""gateway/policy/fields.py against the field sets compiled from the shipped `policies/`, on answers shaped like the
sandbox bank's (its real records where it has them, from `build_bank(7, ...)`).

What is pinned: the allow-list (a field no rule names is dropped at every level, except inside an object a rule lets
through whole), Basic vs Detail, PAN masking, the record filters (selected accounts, Credits/Debits, the consent's
window, a statement's whole period with `end_field`), the Links.Self rewrite and the paging links' `public_link`
rewrite, that the input is never changed, that malformed answers raise MinimiseError, the window narrowing of
`windows()`, and that `exposure()` (what `obgw policy explain` prints) says exactly what `minimise()` does, over every
subset of each shipped response type's permissions.
"""
from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.policy import PolicyError, load_policy
from gateway.policy.fields import (
    Entitlement,
    MinimiseError,
    exposure,
    mask_pan,
    minimise,
    windows,
)
from gateway.policy.model import FieldRule, FieldSet, build_field_tree
from gateway.sandbox.data import build_bank

ROOT = Path(__file__).parents[3]
POLICY = load_policy(ROOT / "policies")
ACCOUNTS = POLICY.fields["OBReadAccount6"]
BALANCES = POLICY.fields["OBReadBalance1"]
TRANSACTIONS = POLICY.fields["OBReadTransaction6"]
STATEMENTS = POLICY.fields["OBReadStatement2"]

BANK = build_bank(7, datetime(2025, 3, 1, tzinfo=UTC))
ALICE = ("acc-alice-current", "acc-alice-savings", "acc-alice-card")
CARD_PAN = "5355221948219938"  # acc-alice-card's UK.OBIE.PAN identification for seed 7

AISP = "/open-banking/v3.1/aisp"
BACKEND = "http://127.0.0.1:8081" + AISP
PUBLIC = "https://gateway.example:8443" + AISP + "/accounts?page=1"

BASIC, DETAIL = "ReadAccountsBasic", "ReadAccountsDetail"
TX_BASIC, TX_DETAIL = "ReadTransactionsBasic", "ReadTransactionsDetail"
CREDITS, DEBITS = "ReadTransactionsCredits", "ReadTransactionsDebits"


def grant(*permissions: str, accounts=ALICE, window=(None, None)) -> Entitlement:
    return Entitlement(frozenset(permissions), frozenset(accounts), window, PUBLIC)


# -- documents as the sandbox bank answers (gateway/sandbox/app.py) ----------------------------------------------

def accounts_document(*account_ids: str) -> dict:
    return {"Data": {"Account": [BANK.ledger.account(i).to_ob() for i in account_ids]},
            "Links": {"Self": f"{BACKEND}/accounts?account_ids={','.join(account_ids)}"},
            "Meta": {"TotalPages": 1}}


def balances_document(account_id: str) -> dict:
    moment = BANK.ledger.balance_time(account_id).isoformat()

    def balance(kind: str) -> dict:
        return {"AccountId": account_id, "CreditDebitIndicator": "Credit", "Type": kind, "DateTime": moment,
                "Amount": {"Amount": "100.00", "Currency": "GBP"}}

    available = balance("InterimAvailable") | {
        "CreditLine": [{"Included": True, "Type": "Pre-Agreed", "Amount": {"Amount": "500.00", "Currency": "GBP"}}]}
    return {"Data": {"Balance": [balance("InterimBooked"), available]},
            "Links": {"Self": f"{BACKEND}/accounts/{account_id}/balances"}, "Meta": {"TotalPages": 1}}


def entries(account_id: str):
    return list(reversed(BANK.ledger.entries(account_id)))  # newest first, as the bank answers


def transactions_document(*account_ids: str) -> dict:
    records = [entry.to_ob("GBP") for account_id in account_ids for entry in entries(account_id)]
    oldest = min(e.booked for a in account_ids for e in BANK.ledger.entries(a))
    newest = max(e.booked for a in account_ids for e in BANK.ledger.entries(a))
    return {"Data": {"Transaction": records},
            "Links": {"Self": f"{BACKEND}/accounts/{account_ids[0]}/transactions"},
            "Meta": {"TotalPages": 1, "FirstAvailableDateTime": oldest.isoformat(),
                     "LastAvailableDateTime": newest.isoformat()}}


def transaction(transaction_id: str, **fields) -> dict:
    """A small hand-made OBTransaction6 record of acc-alice-current."""
    return {"AccountId": "acc-alice-current", "TransactionId": transaction_id, "CreditDebitIndicator": "Credit",
            "Status": "Booked", "BookingDateTime": "2025-01-15T12:00:00+00:00",
            "Amount": {"Amount": "1.00", "Currency": "GBP"}} | fields


def records(document: dict, fields) -> list:
    container = document
    for name in fields.records:
        container = container[name]
    return container


def ids(document: dict) -> list[str]:
    return [record["TransactionId"] for record in document["Data"]["Transaction"]]


def test_the_sandbox_data_has_what_these_tests_rely_on():
    card = BANK.ledger.account("acc-alice-card").to_ob()["Account"][0]
    assert card == {"SchemeName": "UK.OBIE.PAN", "Identification": CARD_PAN, "Name": "Alice Smith"}
    current = [e.to_ob("GBP") for e in BANK.ledger.entries("acc-alice-current")]
    assert {r["CreditDebitIndicator"] for r in current} == {"Credit", "Debit"}
    assert any(r.get("CreditorAccount", {}).get("SchemeName") == "UK.OBIE.PAN" for r in current)
    assert any(r.get("CreditorAccount", {}).get("SchemeName") == "UK.OBIE.SortCodeAccountNumber" for r in current)
    assert any("CardInstrument" in r for r in current)


# -- Basic vs Detail, PAN masking --------------------------------------------------------------------------------

def test_basic_exposes_the_account_but_not_its_identification_or_servicer():
    document = accounts_document(*ALICE)
    out = minimise(document, ACCOUNTS, grant(BASIC))
    assert out["Links"] == {"Self": PUBLIC} and out["Meta"] == {"TotalPages": 1}
    assert len(out["Data"]["Account"]) == 3
    for original, cut in zip(document["Data"]["Account"], out["Data"]["Account"], strict=True):
        assert "Account" not in cut and "Servicer" not in cut
        assert cut == {key: value for key, value in original.items() if key not in ("Account", "Servicer")}
    assert CARD_PAN not in repr(out)


def test_detail_exposes_identification_and_servicer_with_the_pan_masked_and_sort_codes_in_full():
    document = accounts_document(*ALICE)
    out = minimise(document, ACCOUNTS, grant(DETAIL))
    current, savings, card = out["Data"]["Account"]
    assert current == document["Data"]["Account"][0]  # sort code and account number: never masked
    assert current["Account"][0]["Identification"] == "77100160181590"
    assert savings == document["Data"]["Account"][1]  # SecondaryIdentification (a roll number) is kept too
    assert card["Servicer"] == {"SchemeName": "UK.OBIE.BICFI", "Identification": "SBOXGB2L"}
    assert card["Account"] == [{"SchemeName": "UK.OBIE.PAN", "Identification": "************9938",
                                "Name": "Alice Smith"}]
    assert CARD_PAN not in repr(out)


def test_read_pan_shows_the_card_number_in_full():
    document = accounts_document(*ALICE)
    out = minimise(document, ACCOUNTS, grant(DETAIL, "ReadPAN"))
    assert out["Data"] == document["Data"]


def test_read_pan_without_detail_shows_no_identification_at_all():
    out = minimise(accounts_document(*ALICE), ACCOUNTS, grant(BASIC, "ReadPAN"))
    assert all("Account" not in account for account in out["Data"]["Account"])


@pytest.mark.parametrize(("scheme", "masked"), [
    ({"SchemeName": "UK.OBIE.PAN"}, True),
    ({}, True),  # no SchemeName: taken as a card number
    ({"SchemeName": "UK.OBIE.SortCodeAccountNumber"}, False),
    ({"SchemeName": "UK.OBIE.IBAN"}, False),
])
def test_an_identification_is_masked_only_when_it_is_a_card_number(scheme, masked):
    account = BANK.ledger.account("acc-alice-current").to_ob()
    account["Account"] = [scheme | {"Identification": "4929123412349876", "Name": "Alice Smith"}]
    out = minimise({"Data": {"Account": [account]}}, ACCOUNTS, grant(DETAIL))
    assert out["Data"]["Account"][0]["Account"][0]["Identification"] == (
        "************9876" if masked else "4929123412349876")


def test_mask_pan_keeps_at_most_the_last_four_digits():
    assert mask_pan(CARD_PAN) == "*" * 12 + "9938"
    assert mask_pan("1234") == "1234"
    assert mask_pan("") == ""


def test_transactions_basic_hides_the_detail_fields_and_masks_the_card():
    document = transactions_document("acc-alice-current")
    out = minimise(document, TRANSACTIONS, grant(TX_BASIC, CREDITS, DEBITS))
    detail_only = {"TransactionInformation", "Balance", "MerchantDetails", "CreditorAgent", "CreditorAccount",
                   "DebtorAgent", "DebtorAccount"}
    assert len(out["Data"]["Transaction"]) == len(document["Data"]["Transaction"])
    for original, cut in zip(document["Data"]["Transaction"], out["Data"]["Transaction"], strict=True):
        assert not detail_only & cut.keys()
        expected = {key: value for key, value in original.items() if key not in detail_only}
        if "CardInstrument" in expected:  # CardInstrument has no SchemeName: its Identification is a PAN
            pan = original["CardInstrument"]["Identification"]
            expected["CardInstrument"] = original["CardInstrument"] | {"Identification": mask_pan(pan)}
            assert pan not in repr(cut)
        assert cut == expected
    assert out["Meta"] == document["Meta"]


def test_transactions_detail_shows_the_other_party_masking_only_card_numbers():
    document = transactions_document("acc-alice-current")
    out = minimise(document, TRANSACTIONS, grant(TX_DETAIL, CREDITS, DEBITS))
    seen_sort_code = seen_pan = False
    for original, cut in zip(document["Data"]["Transaction"], out["Data"]["Transaction"], strict=True):
        expected = copy.deepcopy(original)
        for party in ("CreditorAccount", "DebtorAccount", "CardInstrument"):
            if party not in original:
                continue
            if original[party].get("SchemeName", "UK.OBIE.PAN") == "UK.OBIE.PAN":
                expected[party]["Identification"] = mask_pan(original[party]["Identification"])
                seen_pan = True
            else:
                seen_sort_code = True
        assert cut == expected
    assert seen_sort_code and seen_pan


# -- the allow-list: unknown fields -------------------------------------------------------------------------------

def test_a_field_no_rule_names_is_dropped_at_every_level_but_kept_inside_an_object_allowed_whole():
    document = accounts_document("acc-alice-current", "acc-alice-card")
    document["Debug"] = {"upstream": "10.0.0.7", "customer": "alice"}         # top level
    document["Data"]["Internal"] = {"RiskScore": 12}                          # in Data
    document["Meta"]["FirstAvailableDateTime"] = "2025-01-01T00:00:00Z"      # a v3.1 field no rule names here
    document["Meta"]["Internal"] = "x"                                        # in Meta (only TotalPages is ruled)
    current = document["Data"]["Account"][0]
    current["CustomerId"] = "alice"                                           # in a record
    current["Account"][0]["Internal"] = "kept"                                # inside Account[]: allowed whole
    current["Servicer"]["Branch"] = "kept too"                                # inside Servicer: allowed whole
    out = minimise(document, ACCOUNTS, grant(DETAIL, "ReadPAN"))
    assert out.keys() == {"Data", "Links", "Meta"}
    assert out["Data"].keys() == {"Account"}
    assert out["Links"] == {"Self": PUBLIC}
    assert out["Meta"] == {"TotalPages": 1}
    cut = out["Data"]["Account"][0]
    assert "CustomerId" not in cut
    assert cut["Account"][0] == {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "77100160181590",
                                 "Name": "Alice Smith", "Internal": "kept"}
    assert cut["Servicer"] == {"SchemeName": "UK.OBIE.BICFI", "Identification": "SBOXGB2L", "Branch": "kept too"}


def test_unknown_keys_inside_an_allowed_amount_are_kept_and_inside_a_hidden_object_are_not():
    record = entries("acc-alice-current")[0].to_ob("GBP")
    record["Amount"]["Internal"] = "kept"
    record["Balance"]["Internal"] = "hidden with Balance"
    record["SupplementaryData"] = {"x": 1}  # a v3.1 field, but no rule names it
    out = minimise({"Data": {"Transaction": [record]}}, TRANSACTIONS, grant(TX_BASIC, CREDITS, DEBITS))
    cut = out["Data"]["Transaction"][0]
    assert cut["Amount"] == {"Amount": record["Amount"]["Amount"], "Currency": "GBP", "Internal": "kept"}
    assert "Balance" not in cut and "SupplementaryData" not in cut


# -- record filters ------------------------------------------------------------------------------------------------

def test_records_of_accounts_the_customer_did_not_select_are_dropped():
    document = accounts_document(*ALICE, "acc-bob-current")
    out = minimise(document, ACCOUNTS, grant(BASIC, accounts=("acc-alice-savings",)))
    assert [a["AccountId"] for a in out["Data"]["Account"]] == ["acc-alice-savings"]
    assert minimise(document, ACCOUNTS, grant(BASIC, accounts=()))["Data"]["Account"] == []


def test_balances_of_unselected_accounts_are_dropped():
    document = balances_document("acc-alice-current")
    document["Data"]["Balance"].append(balances_document("acc-bob-current")["Data"]["Balance"][0])
    out = minimise(document, BALANCES, grant("ReadBalances", accounts=("acc-alice-current",)))
    assert out["Data"]["Balance"] == balances_document("acc-alice-current")["Data"]["Balance"]


def test_transactions_of_unselected_accounts_and_records_without_an_account_are_dropped():
    document = transactions_document("acc-alice-current", "acc-alice-card")
    document["Data"]["Transaction"].append({key: value for key, value in transaction("no-account").items()
                                            if key != "AccountId"})
    out = minimise(document, TRANSACTIONS, grant(TX_BASIC, CREDITS, DEBITS, accounts=("acc-alice-card",)))
    assert ids(out) == [e.transaction_id for e in entries("acc-alice-card")]


@pytest.mark.parametrize(("granted", "directions"), [
    ((CREDITS,), {"Credit"}),
    ((DEBITS,), {"Debit"}),
    ((CREDITS, DEBITS), {"Credit", "Debit"}),
    ((), set()),
])
def test_records_pass_only_in_the_directions_the_consent_grants(granted, directions):
    document = transactions_document("acc-alice-current")
    document["Data"]["Transaction"].append(transaction("no-direction", CreditDebitIndicator=None))
    document["Data"]["Transaction"].append(transaction("odd-direction", CreditDebitIndicator="Both"))
    out = minimise(document, TRANSACTIONS, grant(TX_BASIC, *granted))
    expected = [e.transaction_id for e in entries("acc-alice-current")
                if ("Credit" if e.amount >= 0 else "Debit") in directions]
    assert ids(out) == expected
    assert {r["CreditDebitIndicator"] for r in out["Data"]["Transaction"]} == directions


def test_records_outside_the_consents_window_are_dropped_its_boundaries_included():
    history = BANK.ledger.entries("acc-alice-current")  # oldest first
    since, until = history[10].booked, history[50].booked
    out = minimise(transactions_document("acc-alice-current"), TRANSACTIONS,
                   grant(TX_BASIC, CREDITS, DEBITS, window=(since, until)))
    expected = [e.transaction_id for e in entries("acc-alice-current") if since <= e.booked <= until]
    assert ids(out) == expected
    assert history[10].transaction_id in expected and history[50].transaction_id in expected
    assert history[9].transaction_id not in expected and history[51].transaction_id not in expected


WINDOW = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 31, 23, 59, 59, tzinfo=UTC))


@pytest.mark.parametrize(("booked", "kept"), [
    ("2025-01-01T00:00:00+00:00", True),          # the window's start
    ("2025-01-31T23:59:59+00:00", True),          # the window's end
    ("2025-02-01T00:59:59+01:00", True),          # the end, written in another offset
    ("2025-01-15T12:00:00Z", True),
    ("2025-01-15T12:00:00", True),                # no offset: UTC
    ("2024-12-31T23:59:59+00:00", False),
    ("2025-01-31T23:59:59.000001+00:00", False),
    ("2025-01-31T23:30:00-01:00", False),         # 00:30 UTC on 1 February
    ("2025-01-01T00:30:00+01:00", False),         # 23:30 UTC on 31 December
    ("last Tuesday", False),                      # unparsable
    ("2025-13-01T00:00:00+00:00", False),
    (20250115, False),
    ("", False),
    (None, False),
])
def test_window_boundaries_and_unreadable_dates(booked, kept):
    document = {"Data": {"Transaction": [transaction("t", BookingDateTime=booked)]}}
    out = minimise(document, TRANSACTIONS, grant(TX_BASIC, CREDITS, window=WINDOW))
    assert ids(out) == (["t"] if kept else [])


def test_a_record_without_a_booking_date_is_dropped_even_without_a_window():
    record = {key: value for key, value in transaction("undated").items() if key != "BookingDateTime"}
    document = {"Data": {"Transaction": [record, transaction("dated"), transaction("garbled", BookingDateTime="?")]}}
    assert ids(minimise(document, TRANSACTIONS, grant(TX_BASIC, CREDITS))) == ["dated"]


def test_without_a_consent_window_every_dated_record_passes():
    document = transactions_document("acc-alice-current")
    out = minimise(document, TRANSACTIONS, grant(TX_BASIC, CREDITS, DEBITS))
    assert len(out["Data"]["Transaction"]) == len(document["Data"]["Transaction"])


def test_a_window_with_one_end_bounds_that_end_only():
    document = {"Data": {"Transaction": [transaction("old", BookingDateTime="2000-01-01T00:00:00+00:00"),
                                         transaction("new", BookingDateTime="2100-01-01T00:00:00+00:00")]}}
    cut = datetime(2025, 1, 1, tzinfo=UTC)
    assert ids(minimise(document, TRANSACTIONS, grant(TX_BASIC, CREDITS, window=(cut, None)))) == ["new"]
    assert ids(minimise(document, TRANSACTIONS, grant(TX_BASIC, CREDITS, window=(None, cut)))) == ["old"]


# -- a statement's whole period (window.end_field) -----------------------------------------------------------------

def statement(statement_id: str, start: object, end: object) -> dict:
    """A small hand-made OBStatement2 record of acc-alice-current (None: the field is absent)."""
    record = {"AccountId": "acc-alice-current", "StatementId": statement_id, "Type": "RegularPeriodic",
              "StartDateTime": start, "EndDateTime": end, "CreationDateTime": "2025-02-01T00:00:00+00:00"}
    return {key: value for key, value in record.items() if value is not None}


def statement_ids(document: dict) -> list[str]:
    return [record["StatementId"] for record in document["Data"]["Statement"]]


def test_the_shipped_statement_window_has_an_end_field():
    assert (STATEMENTS.window.field, STATEMENTS.window.end_field) == ("StartDateTime", "EndDateTime")


@pytest.mark.parametrize(("start", "end", "kept"), [
    ("2025-01-01T00:00:00+00:00", "2025-01-31T23:59:59+00:00", True),   # exactly the window
    ("2025-01-10T00:00:00+00:00", "2025-01-20T00:00:00+00:00", True),   # wholly inside
    ("2025-01-10T00:00:00+00:00", "2025-02-09T23:59:59+00:00", False),  # ends after the window's end
    ("2024-12-01T00:00:00+00:00", "2025-01-10T00:00:00+00:00", False),  # starts before the window's start
    ("2024-12-01T00:00:00+00:00", "2025-02-28T00:00:00+00:00", False),  # spans the whole window and more
    ("2025-01-10T00:00:00+00:00", None, False),                         # no end: cannot be shown to be inside
    ("2025-01-10T00:00:00+00:00", "end of month", False),               # an end that cannot be read
    ("2025-01-10T00:00:00+00:00", 20250120, False),
])
def test_a_statement_is_kept_only_when_its_start_and_end_are_inside_the_window(start, end, kept):
    document = {"Data": {"Statement": [statement("s", start, end)]}}
    out = minimise(document, STATEMENTS, grant("ReadStatementsBasic", window=WINDOW))
    assert statement_ids(out) == (["s"] if kept else [])


def test_statements_past_the_window_are_dropped_and_those_inside_kept_side_by_side():
    document = {"Data": {"Statement": [
        statement("january", "2025-01-01T00:00:00+00:00", "2025-01-31T23:59:59+00:00"),
        statement("december-january", "2024-12-15T00:00:00+00:00", "2025-01-14T23:59:59+00:00"),
        statement("january-february", "2025-01-15T00:00:00+00:00", "2025-02-14T23:59:59+00:00"),
    ]}}
    out = minimise(document, STATEMENTS, grant("ReadStatementsBasic", window=WINDOW))
    assert statement_ids(out) == ["january"]


def test_without_a_consent_window_a_statement_still_needs_a_readable_end():
    document = {"Data": {"Statement": [statement("whole", "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),
                                       statement("no-end", "2025-01-01T00:00:00Z", None)]}}
    assert statement_ids(minimise(document, STATEMENTS, grant("ReadStatementsBasic"))) == ["whole"]


def test_exposure_names_both_ends_of_an_end_field_window():
    seen = exposure(STATEMENTS, {"ReadStatementsBasic"})
    assert "only StartDateTime and EndDateTime within the consent's TransactionFromDateTime..ToDateTime" in (
        seen.records)
    assert "only BookingDateTime within the consent's TransactionFromDateTime..ToDateTime" in (
        exposure(TRANSACTIONS, {TX_BASIC}).records)


# -- Links.Self, the input -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "document", "permissions"), [
    (ACCOUNTS, accounts_document(*ALICE), (BASIC,)),
    (BALANCES, balances_document("acc-alice-current"), ("ReadBalances",)),
    (TRANSACTIONS, transactions_document("acc-alice-current"), (TX_BASIC, CREDITS)),
], ids=["accounts", "balances", "transactions"])
def test_links_self_is_rewritten_to_the_public_url(fields, document, permissions):
    assert document["Links"]["Self"].startswith("http://127.0.0.1:8081/")
    out = minimise(document, fields, grant(*permissions))
    assert out["Links"] == {"Self": PUBLIC}
    assert "127.0.0.1" not in repr(out)


# -- paging links (rewrite: public_link) ----------------------------------------------------------------------------

PAGING = ("First", "Prev", "Next", "Last")


def paged_accounts_document() -> dict:
    document = accounts_document("acc-alice-current")
    document["Links"] |= {name: f"{BACKEND}/accounts?account_ids=acc-alice-current&page={page}"
                          for page, name in enumerate(PAGING, start=1)}
    return document


def test_a_paging_link_is_replaced_by_what_public_link_makes_of_it():
    seen: list[object] = []

    def public_link(link: object) -> str:
        seen.append(link)
        return f"https://gateway.example:8443{AISP}/accounts?page={str(link).rsplit('=', 1)[1]}"

    document = paged_accounts_document()
    out = minimise(document, ACCOUNTS, Entitlement(frozenset({BASIC}), frozenset(ALICE), (None, None), PUBLIC,
                                                   public_link))
    assert out["Links"] == {"Self": PUBLIC} | {
        name: f"https://gateway.example:8443{AISP}/accounts?page={page}" for page, name in enumerate(PAGING, 1)}
    assert sorted(seen) == sorted(document["Links"][name] for name in PAGING)  # the bank's links, each once
    assert "127.0.0.1" not in repr(out)


def test_a_paging_link_public_link_cannot_place_is_dropped_with_its_key():
    def public_link(link: object) -> str | None:
        return None if "page=3" in str(link) else "https://gateway.example:8443/next"

    out = minimise(paged_accounts_document(), ACCOUNTS,
                   Entitlement(frozenset({BASIC}), frozenset(ALICE), (None, None), PUBLIC, public_link))
    assert out["Links"] == {"Self": PUBLIC, "First": "https://gateway.example:8443/next",
                            "Prev": "https://gateway.example:8443/next", "Last": "https://gateway.example:8443/next"}


def test_paging_links_are_dropped_by_default():
    """An Entitlement without a public_link knows no gateway route: no back-end link leaves."""
    out = minimise(paged_accounts_document(), ACCOUNTS, grant(BASIC))
    assert out["Links"] == {"Self": PUBLIC}


def test_the_gateways_public_link_leads_to_its_own_route_without_the_selected_accounts():
    """Minimise's public_link: a bank link to a GET route becomes the gateway's URL of that route (the query
    parameter the gateway fills in itself left out); a link to anywhere else is dropped."""
    from gateway.pipeline.minimise import Minimise

    public_link = Minimise("https://gateway.example:8443", POLICY, bytes(32)).public_link
    out = minimise(paged_accounts_document() | {"Links": {
        "Self": f"{BACKEND}/accounts",
        "Next": f"{BACKEND}/accounts?account_ids=acc-alice-current&page=2",
        "Prev": f"{BACKEND}/accounts/acc-alice-current/transactions?page=1",
        "First": "http://127.0.0.1:8081/admin/accounts?page=1",
        "Last": f"https://elsewhere.example{AISP}/accounts?page=9"}},
        ACCOUNTS, Entitlement(frozenset({BASIC}), frozenset(ALICE), (None, None), PUBLIC, public_link))
    assert out["Links"] == {"Self": PUBLIC,
                            "Next": f"https://gateway.example:8443{AISP}/accounts?page=2",
                            "Prev": f"https://gateway.example:8443{AISP}/accounts/acc-alice-current/transactions"
                                    "?page=1"}


def test_links_self_is_not_invented_when_the_bank_sends_none():
    out = minimise({"Data": {"Account": []}, "Meta": {"TotalPages": 1}}, ACCOUNTS, grant(BASIC))
    assert "Self" not in out.get("Links", {})


@pytest.mark.parametrize(("fields", "document", "permissions"), [
    (ACCOUNTS, accounts_document(*ALICE, "acc-bob-current"), (BASIC,)),
    (ACCOUNTS, accounts_document(*ALICE), (DETAIL,)),
    (BALANCES, balances_document("acc-bob-current"), ("ReadBalances",)),
    (TRANSACTIONS, transactions_document("acc-alice-current", "acc-bob-current"), (TX_BASIC, CREDITS)),
    (TRANSACTIONS, transactions_document("acc-alice-card"), (TX_DETAIL, DEBITS)),
], ids=["accounts-basic", "accounts-detail-masked", "balances-unselected", "transactions-filtered",
        "transactions-masked"])
def test_the_input_document_is_never_changed(fields, document, permissions):
    document["Data"]["Extra"] = {"nested": [1, {"deep": "x"}]}
    before = copy.deepcopy(document)
    window = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
    out = minimise(document, fields, grant(*permissions, window=window))
    assert document == before
    assert out != before


def test_the_answer_shares_nothing_mutable_with_the_input_where_it_was_cut():
    document = accounts_document("acc-alice-card")
    out = minimise(document, ACCOUNTS, grant(DETAIL))
    out["Data"]["Account"][0]["Nickname"] = "changed"
    out["Data"]["Account"].clear()
    assert document == accounts_document("acc-alice-card")


# -- malformed answers ---------------------------------------------------------------------------------------------

ALL_TYPES = pytest.mark.parametrize("fields", [ACCOUNTS, BALANCES, TRANSACTIONS],
                                    ids=["accounts", "balances", "transactions"])


@ALL_TYPES
@pytest.mark.parametrize("document", [[], [{"Data": {}}], "{}", None, 3, True])
def test_an_answer_that_is_not_an_object_is_refused(fields, document):
    with pytest.raises(MinimiseError):
        minimise(document, fields, grant(BASIC, "ReadBalances", TX_BASIC, CREDITS, DEBITS))


@ALL_TYPES
@pytest.mark.parametrize("value", [{"0": {"AccountId": "acc-alice-current"}}, "records", 7])
def test_records_that_are_not_a_list_are_refused(fields, value):
    document = {"Data": {fields.records[1]: value}}
    with pytest.raises(MinimiseError):
        minimise(document, fields, grant(BASIC, "ReadBalances", TX_BASIC, CREDITS, DEBITS))


@ALL_TYPES
@pytest.mark.parametrize("record", ["acc-alice-current", None, 1, [{"AccountId": "acc-alice-current"}]])
def test_a_record_that_is_not_an_object_is_refused(fields, record):
    document = {"Data": {fields.records[1]: [{"AccountId": "acc-alice-current"}, record]}}
    with pytest.raises(MinimiseError):
        minimise(document, fields, grant(BASIC, "ReadBalances", TX_BASIC, CREDITS, DEBITS))


@ALL_TYPES
def test_data_that_is_not_an_object_is_refused_rather_than_escaping_the_record_filters(fields):
    """`Data` as a list holding the records: the record filters must not be skipped (bob's records, a record
    outside the window, a debit without ReadTransactionsDebits would otherwise all leave)."""
    name = fields.records[1]
    bob = {"AccountId": "acc-bob-current", "TransactionId": "bob-1", "CreditDebitIndicator": "Debit",
           "BookingDateTime": "1999-01-01T00:00:00+00:00", "Amount": {"Amount": "9.99", "Currency": "GBP"}}
    document = {"Data": [{name: [bob]}]}
    granted = grant(BASIC, "ReadBalances", TX_BASIC, CREDITS, accounts=("acc-alice-current",),
                    window=(datetime(2025, 1, 1, tzinfo=UTC), None))
    with pytest.raises(MinimiseError):
        minimise(document, fields, granted)


@pytest.mark.parametrize("field", ["AccountId", "CreditDebitIndicator"])
@pytest.mark.parametrize("value", [["acc-alice-current"], {"Credit": True}])
def test_a_record_filter_field_that_is_not_a_string_is_refused_as_malformed(field, value):
    """The pipeline turns only MinimiseError into its 502: a TypeError here would escape it."""
    document = {"Data": {"Transaction": [transaction("t", **{field: value})]}}
    with pytest.raises(MinimiseError):
        minimise(document, TRANSACTIONS, grant(TX_BASIC, CREDITS, DEBITS))


def test_a_card_number_that_is_not_a_string_never_leaves_unmasked():
    """A bank that sends the PAN as a JSON number (orjson reads it as an int) must not get it out in full."""
    record = transaction("t", CardInstrument={"CardSchemeName": "MasterCard", "Identification": int(CARD_PAN)})
    try:
        out = minimise({"Data": {"Transaction": [record]}}, TRANSACTIONS, grant(TX_BASIC, CREDITS))
    except MinimiseError:
        return
    shown = out["Data"]["Transaction"][0].get("CardInstrument", {}).get("Identification")
    assert shown in (None, mask_pan(CARD_PAN)), f"the full card number left as {shown!r}"


# -- windows(): what the back-end is asked for ---------------------------------------------------------------------

FROM, TO = "fromBookingDateTime", "toBookingDateTime"
JAN = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 31, tzinfo=UTC))


@pytest.mark.parametrize(("asked", "expected"), [
    ({}, {FROM: "2025-01-01T00:00:00+00:00", TO: "2025-01-31T00:00:00+00:00"}),
    ({FROM: "2024-06-01T00:00:00+00:00", TO: "2025-06-01T00:00:00+00:00"},   # wider: narrowed both ways
     {FROM: "2025-01-01T00:00:00+00:00", TO: "2025-01-31T00:00:00+00:00"}),
    ({FROM: "2025-01-10T00:00:00+00:00", TO: "2025-01-20T00:00:00+00:00"},   # inside: the TPP's own
     {FROM: "2025-01-10T00:00:00+00:00", TO: "2025-01-20T00:00:00+00:00"}),
    ({FROM: "2024-12-01T00:00:00+00:00", TO: "2025-01-20T00:00:00+00:00"},
     {FROM: "2025-01-01T00:00:00+00:00", TO: "2025-01-20T00:00:00+00:00"}),
    ({FROM: "2025-01-10T00:00:00+00:00", TO: "2025-03-01T00:00:00+00:00"},
     {FROM: "2025-01-10T00:00:00+00:00", TO: "2025-01-31T00:00:00+00:00"}),
    ({FROM: "2025-01-10T00:00:00"}, {FROM: "2025-01-10T00:00:00+00:00", TO: "2025-01-31T00:00:00+00:00"}),
    ({FROM: "2025-01-01T00:30:00+01:00"},  # 23:30 UTC on 31 December: before the consent's window
     {FROM: "2025-01-01T00:00:00+00:00", TO: "2025-01-31T00:00:00+00:00"}),
    ({FROM: ""}, {FROM: "2025-01-01T00:00:00+00:00", TO: "2025-01-31T00:00:00+00:00"}),
])
def test_windows_narrows_the_tpps_window_to_the_consents(asked, expected):
    params = windows(TRANSACTIONS, asked, grant(TX_BASIC, window=JAN))
    assert params == expected


def test_windows_narrows_to_the_later_instant_whatever_the_offsets():
    params = windows(TRANSACTIONS, {FROM: "2025-01-01T02:00:00+01:00"}, grant(TX_BASIC, window=JAN))
    assert datetime.fromisoformat(params[FROM]) == datetime(2025, 1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("asked", "expected"), [
    ({}, {}),
    ({FROM: "2025-01-10T00:00:00+00:00"}, {FROM: "2025-01-10T00:00:00+00:00"}),
    ({TO: "2025-01-20T00:00:00Z"}, {TO: "2025-01-20T00:00:00+00:00"}),
    ({FROM: "2025-01-10T00:00:00+02:00", TO: "2025-01-20T00:00:00+00:00", "page": "2"},
     {FROM: "2025-01-10T00:00:00+02:00", TO: "2025-01-20T00:00:00+00:00"}),
])
def test_windows_passes_the_tpps_window_through_when_the_consent_has_none(asked, expected):
    assert windows(TRANSACTIONS, asked, grant(TX_BASIC)) == expected


def test_windows_bounds_only_the_end_the_consent_bounds():
    since = datetime(2025, 1, 1, tzinfo=UTC)
    asked = {FROM: "2024-01-01T00:00:00+00:00", TO: "2025-02-01T00:00:00+00:00"}
    assert windows(TRANSACTIONS, asked, grant(TX_BASIC, window=(since, None))) == {
        FROM: "2025-01-01T00:00:00+00:00", TO: "2025-02-01T00:00:00+00:00"}


def test_windows_is_empty_for_a_response_type_without_a_window():
    assert windows(ACCOUNTS, {FROM: "2025-01-10T00:00:00+00:00"}, grant(BASIC, window=JAN)) == {}


def test_a_window_the_back_end_is_asked_for_is_the_one_minimise_enforces():
    since, until = JAN
    document = transactions_document("acc-alice-current")
    params = windows(TRANSACTIONS, {FROM: (since - timedelta(days=30)).isoformat()}, grant(TX_BASIC, window=JAN))
    asked = (datetime.fromisoformat(params[FROM]), datetime.fromisoformat(params[TO]))
    out = minimise(document, TRANSACTIONS, grant(TX_BASIC, CREDITS, DEBITS, window=JAN))
    assert asked == JAN
    assert all(since <= datetime.fromisoformat(r["BookingDateTime"]) <= until for r in out["Data"]["Transaction"])


# -- exposure() says what minimise() does --------------------------------------------------------------------------

PAN = "4929123412349876"
RECORD_ACCOUNT = "acc-alice-current"


def _plant(document: dict, path: str) -> None:
    """Put `path` into `document` (lists of one item for `[]`), with a leaf value that names it."""
    node = document
    parts = path.split(".")
    for part in parts[:-1]:
        name = part.removesuffix("[]")
        node = node.setdefault(name, [{}])[0] if part.endswith("[]") else node.setdefault(name, {})
    node.setdefault(parts[-1].removesuffix("[]"), f"<{path}>")


def full_document(fields) -> tuple[dict, dict[str, object]]:
    """A document holding every rule path of `fields` (two records where there are directions), and the leaf
    values planted, by path."""
    document: dict = {}
    for path in sorted((rule.path for rule in fields.rules), key=lambda p: -p.count(".")):
        _plant(document, path)
    leaves = {rule.path: f"<{rule.path}>" for rule in fields.rules}
    for rule in fields.rules:
        if rule.mask == "pan":
            *parents, name = rule.path.split(".")
            container = document
            for part in parents:
                container = container[part.removesuffix("[]")]
                container = container[0] if isinstance(container, list) else container
            container[name] = leaves[rule.path] = PAN  # no SchemeName beside it: a card number
    if fields.records is not None:
        record = records(document, fields)[0]
        prefix = ".".join(fields.records) + "[]."
        fixed = {fields.account_field: RECORD_ACCOUNT} if fields.account_field else {}
        if fields.window:
            fixed[fields.window.field] = "2025-01-15T12:00:00+00:00"
            if fields.window.end_field:
                fixed[fields.window.end_field] = "2025-01-31T12:00:00+00:00"
        for name, value in fixed.items():
            record[name] = leaves[prefix + name] = value
        if fields.direction:
            field, _ = fields.direction
            credit, debit = copy.deepcopy(record), copy.deepcopy(record)
            credit[field], debit[field] = "Credit", "Debit"
            records(document, fields)[:] = [credit, debit]
            leaves[prefix + field] = None  # differs per record
    return document, leaves


def values_at(document: object, path: str) -> list:
    nodes = [document]
    for part in path.split("."):
        nodes = [node[part.removesuffix("[]")] for node in nodes
                 if isinstance(node, dict) and part.removesuffix("[]") in node]
        if part.endswith("[]"):
            nodes = [item for node in nodes for item in node]
    return nodes


def _permission_sets(fields) -> list[frozenset[str]]:
    named = {code for rule in fields.rules for code in rule.permissions}
    if fields.direction:
        named |= set(fields.direction[1].values())
    if any(rule.mask == "pan" for rule in fields.rules):
        named.add("ReadPAN")
    codes = sorted(named)
    return [frozenset(subset) for size in range(len(codes) + 1) for subset in itertools.combinations(codes, size)]


# Every shipped response type with field rules (a file has none: it is passed whole, see test_policy_explain).
RULED = sorted((fields for fields in POLICY.fields.values() if fields.media_types is None),
               key=lambda fields: fields.response_type)
SWEEP = [pytest.param(fields, permissions, id=f"{fields.response_type}-{'+'.join(sorted(permissions)) or 'none'}")
         for fields in RULED for permissions in _permission_sets(fields)]


def test_the_sweep_covers_every_subset_of_each_types_permissions():
    assert len(_permission_sets(ACCOUNTS)) == 2 ** 3    # Basic, Detail, ReadPAN
    assert len(_permission_sets(BALANCES)) == 2 ** 1
    assert len(_permission_sets(TRANSACTIONS)) == 2 ** 5  # Basic, Detail, Credits, Debits, ReadPAN
    assert len(_permission_sets(STATEMENTS)) == 2 ** 2    # Basic, Detail
    assert [fields.response_type for fields in RULED] == sorted(set(POLICY.fields) - {"File"})


@pytest.mark.parametrize(("fields", "permissions"), SWEEP)
def test_exposure_says_exactly_what_minimise_lets_through(fields, permissions):
    assert_exposure_is_what_minimise_does(fields, permissions)


# Rules whose permissions differ along one path (the shipped ones agree parent to child): a field is exposed only if
# every rule above it is granted too, whatever its own rule says.
NESTED = FieldSet(
    response_type="OBReadTransaction6",
    root=build_field_tree(NESTED_RULES := (
        FieldRule("Data.Transaction[].AccountId", frozenset(), None, None),
        FieldRule("Data.Transaction[].CreditorAccount", frozenset({TX_DETAIL}), None, None),
        FieldRule("Data.Transaction[].CreditorAccount.Name", frozenset(), None, None),
        FieldRule("Data.Transaction[].CreditorAccount.Identification", frozenset({TX_BASIC}), "pan", None),
        FieldRule("Data.Transaction[].Balance.Amount", frozenset({TX_BASIC}), None, None),
        FieldRule("Data.Transaction[].Balance.Amount.Amount", frozenset({TX_DETAIL}), None, None),
        FieldRule("Links.Self", frozenset(), None, "public_url"),
    )),
    rules=NESTED_RULES, records=("Data", "Transaction"), account_field="AccountId", direction=None, window=None)


@pytest.mark.parametrize("permissions", _permission_sets(NESTED),
                         ids=lambda permissions: "+".join(sorted(permissions)) or "none")
def test_exposure_is_what_minimise_does_when_rules_differ_along_a_path(permissions):
    assert_exposure_is_what_minimise_does(NESTED, permissions)


def follow(link: object) -> str:
    """A public_link that leads every link to a gateway route (exposure() lists a link as exposed: it is, when it
    leads where the gateway serves)."""
    return f"https://gateway.example:8443/followed?{link}"


def assert_exposure_is_what_minimise_does(fields, permissions):
    seen = exposure(fields, permissions)
    paths = [rule.path for rule in fields.rules]
    assert sorted(seen.exposed + seen.masked + seen.hidden) == sorted(paths)  # each rule exactly once
    assert [p for p in paths if p in seen.exposed] == list(seen.exposed)       # in the order of fields.yaml

    document, leaves = full_document(fields)
    before = copy.deepcopy(document)
    out = minimise(document, fields, Entitlement(permissions, frozenset({RECORD_ACCOUNT}), (None, None), PUBLIC,
                                                 follow))
    assert document == before

    shown = set(seen.exposed) | set(seen.masked)
    prefix = ".".join(fields.records) + "[]." if fields.records else None
    kept_records = None
    if fields.direction:
        field, by_direction = fields.direction
        directions = {d for d, code in by_direction.items() if code in permissions}
        kept_records = len(directions)
        assert len(records(out, fields)) == kept_records
        note = f"{' and '.join(d for d in ('Credit', 'Debit') if d in directions) or 'no'} records ({field})"
        assert note in seen.records
    for path in paths:
        found = values_at(out, path)
        if prefix and path.startswith(prefix) and kept_records == 0:
            assert found == [], path  # no record passes, so none of its fields do
            continue
        expected_count = kept_records if (prefix and path.startswith(prefix) and kept_records) else 1
        assert len(found) == (expected_count if path in shown else 0), (path, found)
        leaf = leaves.get(path)
        if path not in shown or leaf is None or any(deeper.replace("[]", "").startswith(path.replace("[]", "") + ".")
                                                    for deeper in paths):
            continue
        rule = next(rule for rule in fields.rules if rule.path == path)
        if path in seen.masked:
            assert found == [mask_pan(PAN)] * len(found), path
        elif rule.rewrite == "public_url":
            assert found == [PUBLIC], path
        elif rule.rewrite == "public_link":
            assert found == [follow(leaf)], path
        else:
            assert found == [leaf] * len(found), path


@pytest.mark.parametrize(("fields", "permissions"), SWEEP)
def test_a_masked_rule_is_masked_exactly_when_read_pan_is_missing(fields, permissions):
    seen = exposure(fields, permissions)
    for rule in fields.rules:
        if rule.mask == "pan" and rule.path not in seen.hidden:
            assert (rule.path in seen.masked) == ("ReadPAN" not in permissions)
        if rule.mask is None:
            assert rule.path not in seen.masked


def test_exposure_of_the_shipped_accounts_rules_basic_vs_detail():
    basic = exposure(ACCOUNTS, {BASIC})
    assert set(basic.hidden) == {"Data.Account[].Account", "Data.Account[].Account[].Identification",
                                 "Data.Account[].Servicer"}
    assert basic.masked == ()
    detail = exposure(ACCOUNTS, {DETAIL})
    assert detail.hidden == () and detail.masked == ("Data.Account[].Account[].Identification",)
    assert exposure(ACCOUNTS, {DETAIL, "ReadPAN"}).masked == ()
    assert basic.records == ("only the accounts the customer selected",)


# -- the field set is the one the author wrote ----------------------------------------------------------------------

def test_two_spellings_of_one_field_path_are_one_duplicate_rule(tmp_path):
    """`Data.Account[].Account` and `Data.Account[].Account[]` name the same field: the compiled tree keeps one rule
    per field, so accepting both would silently drop one (here: the Detail-only restriction)."""
    for name in ("services.yaml", "routes.yaml"):
        (tmp_path / name).write_text((ROOT / "policies" / name).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "fields.yaml").write_text("""\
format_version: 1
responses:
  OBReadAccount6:
    fields:
      - {path: "Data.Account[].AccountId", permissions: [ReadAccountsBasic, ReadAccountsDetail]}
      - {path: "Data.Account[].Account", permissions: [ReadAccountsDetail]}
      - {path: "Data.Account[].Account[]"}
  OBReadBalance1:
    fields:
      - {path: "Data.Balance[].Amount", permissions: [ReadBalances]}
  OBReadTransaction6:
    fields:
      - {path: "Data.Transaction[].Amount", permissions: [ReadTransactionsBasic, ReadTransactionsDetail]}
""", encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)
    assert "fields[2].path" in str(caught.value) and "has a rule already (fields[1])" in str(caught.value)
