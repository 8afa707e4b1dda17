"""The UK OB v3.1.11 rules for a new account-access consent: each rule's Refusal reason and OBError1.Path."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.consents.validate import AccountAccessRequest, account_access
from gateway.errors import Refusal

FUTURE = (datetime.now(timezone.utc) + timedelta(days=90)).replace(microsecond=0)


def _body(data: dict | None = None, *, drop: tuple[str, ...] = (), **top) -> dict:
    data_part = {"Permissions": ["ReadAccountsBasic", "ReadBalances"]} | (data or {})
    body = {"Data": data_part, "Risk": {}} | top
    return {k: v for k, v in body.items() if k not in drop}


def _refusal(body) -> Refusal:
    with pytest.raises(Refusal) as refused:
        account_access(body)
    return refused.value


def _assert_refused(body, reason: str, path: str | None) -> None:
    refusal = _refusal(body)
    assert (refusal.reason, refusal.path) == (reason, path)


def test_a_minimal_consent_request_is_accepted():
    assert account_access(_body()) == AccountAccessRequest(("ReadAccountsBasic", "ReadBalances"), None, None, None)


def test_a_full_consent_request_is_accepted_with_its_dates_normalised():
    permissions = ["ReadAccountsDetail", "ReadTransactionsDetail", "ReadTransactionsCredits",
                   "ReadTransactionsDebits", "ReadBalances"]
    request = account_access(_body({
        "Permissions": permissions, "ExpirationDateTime": FUTURE.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "TransactionFromDateTime": "2025-01-01T00:00:00+01:00", "TransactionToDateTime": "2025-12-31T23:59:59Z"}))
    assert request.permissions == tuple(permissions)
    assert datetime.fromisoformat(request.expires) == FUTURE
    assert request.expires.endswith("+00:00")
    assert request.transaction_from == "2025-01-01T00:00:00+01:00"
    assert request.transaction_to == "2025-12-31T23:59:59+00:00"


@pytest.mark.parametrize("body", [[], "Data", None, 42, ["Data"]],
                         ids=["empty-list", "string", "null", "number", "list"])
def test_a_body_that_is_not_an_object_is_refused(body):
    _assert_refused(body, "request.invalid_json", None)


@pytest.mark.parametrize("data", [None, "x", [], 1], ids=["missing", "string", "list", "number"])
def test_data_is_required_as_an_object(data):
    body = _body(drop=("Data",)) if data is None else _body(Data=data)
    _assert_refused(body, "consent.field_missing", "Data")


@pytest.mark.parametrize("risk", [None, "none", [], 0], ids=["missing", "string", "list", "zero"])
def test_risk_is_required_as_an_object(risk):
    body = _body(drop=("Risk",)) if risk is None else _body(Risk=risk)
    _assert_refused(body, "consent.field_missing", "Risk")


def test_an_empty_risk_object_is_enough():
    assert account_access(_body(Risk={})).permissions


@pytest.mark.parametrize("permissions", [None, [], "ReadAccountsBasic", ["ReadAccountsBasic", 7], {"a": 1}],
                         ids=["missing", "empty", "string", "not-all-strings", "object"])
def test_permissions_must_list_at_least_one_permission(permissions):
    data = {"Permissions": permissions}
    if permissions is None:
        body = _body()
        del body["Data"]["Permissions"]
    else:
        body = _body(data)
    _assert_refused(body, "consent.field_missing", "Data.Permissions")


@pytest.mark.parametrize("unknown", ["ReadEverything", "readaccountsbasic", "ReadTransactions"])
def test_an_unknown_permission_is_refused(unknown):
    refusal = _refusal(_body({"Permissions": ["ReadAccountsBasic", unknown]}))
    assert (refusal.reason, refusal.path) == ("consent.field_invalid", "Data.Permissions")
    assert unknown in refusal.message


def test_a_permission_listed_twice_is_refused():
    _assert_refused(_body({"Permissions": ["ReadAccountsBasic", "ReadBalances", "ReadAccountsBasic"]}),
                    "consent.field_invalid", "Data.Permissions")


def test_a_consent_without_read_accounts_basic_or_detail_is_refused():
    _assert_refused(_body({"Permissions": ["ReadBalances", "ReadTransactionsBasic", "ReadTransactionsCredits"]}),
                    "consent.field_invalid", "Data.Permissions")


@pytest.mark.parametrize("transactions", [
    ["ReadTransactionsBasic"],
    ["ReadTransactionsDetail"],
    ["ReadTransactionsBasic", "ReadTransactionsDetail"],
    ["ReadTransactionsCredits"],
    ["ReadTransactionsDebits"],
    ["ReadTransactionsCredits", "ReadTransactionsDebits"],
], ids=lambda p: "+".join(x.removeprefix("ReadTransactions") for x in p))
def test_transaction_content_and_direction_permissions_must_come_together(transactions):
    _assert_refused(_body({"Permissions": ["ReadAccountsDetail", *transactions]}),
                    "consent.field_invalid", "Data.Permissions")


@pytest.mark.parametrize("transactions", [
    ["ReadTransactionsBasic", "ReadTransactionsCredits"],
    ["ReadTransactionsDetail", "ReadTransactionsDebits"],
    ["ReadTransactionsBasic", "ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits"],
], ids=lambda p: "+".join(x.removeprefix("ReadTransactions") for x in p))
def test_transaction_content_with_a_direction_is_accepted(transactions):
    assert account_access(_body({"Permissions": ["ReadAccountsBasic", *transactions]})).permissions


@pytest.mark.parametrize("field", ["ExpirationDateTime", "TransactionFromDateTime", "TransactionToDateTime"])
@pytest.mark.parametrize("value", ["2099-01-01T00:00:00", "2099-01-01", "tomorrow", "", 20990101, ["2099"]],
                         ids=["no-zone", "date-only", "not-a-date", "empty", "number", "list"])
def test_a_date_that_is_not_an_iso_date_time_with_a_zone_is_refused(field, value):
    _assert_refused(_body({field: value}), "consent.invalid_date", f"Data.{field}")


def test_a_null_date_is_the_same_as_no_date():
    assert account_access(_body({"ExpirationDateTime": None})).expires is None


@pytest.mark.parametrize("expires", [
    datetime.now(timezone.utc) - timedelta(seconds=5), datetime(2020, 1, 1, tzinfo=timezone(timedelta(hours=5)))],
    ids=["seconds-ago", "years-ago-in-another-zone"])
def test_an_expiry_in_the_past_is_refused(expires):
    _assert_refused(_body({"ExpirationDateTime": expires.isoformat()}), "consent.invalid_date",
                    "Data.ExpirationDateTime")


def test_transactions_from_after_to_is_refused():
    _assert_refused(_body({"TransactionFromDateTime": "2025-06-02T00:00:00Z",
                           "TransactionToDateTime": "2025-06-01T00:00:00Z"}),
                    "consent.invalid_date", "Data.TransactionFromDateTime")


def test_the_transaction_window_is_compared_across_time_zones():
    # 01:00+02:00 is 23:00Z of the day before: the same instant order as written in UTC.
    _assert_refused(_body({"TransactionFromDateTime": "2025-06-01T00:30:00Z",
                           "TransactionToDateTime": "2025-06-01T01:00:00+02:00"}),
                    "consent.invalid_date", "Data.TransactionFromDateTime")


def test_a_one_sided_or_zero_length_transaction_window_is_accepted():
    assert account_access(_body({"TransactionFromDateTime": "2025-06-01T00:00:00Z"})).transaction_to is None
    assert account_access(_body({"TransactionToDateTime": "2025-06-01T00:00:00Z"})).transaction_from is None
    same = account_access(_body({"TransactionFromDateTime": "2025-06-01T00:00:00Z",
                                 "TransactionToDateTime": "2025-06-01T00:00:00Z"}))
    assert same.transaction_from == same.transaction_to
