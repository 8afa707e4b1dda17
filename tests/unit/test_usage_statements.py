"""Statements and reconciliation (gateway/usage.py) and the shipped plans (policies/plans.yaml, CONTRACT §14)."""
from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.policy import load_policy
from gateway.ratelimit import seconds_to_next_month
from gateway.usage import (
    audited_counts,
    counts_by_product,
    differences,
    month_bounds,
    products_by_route,
    render,
    statement,
)

POLICY = load_policy(Path(__file__).parents[2] / "policies")
GENERATED = datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc)


def test_the_shipped_plans_are_the_contracts():
    plans = POLICY.plans
    assert plans.default_plan == "standard" and {"standard", "trial"} <= set(plans.plans)
    assert plans.plans["trial"].quotas == {"accounts": 100}
    accounts = {route.id for route in POLICY.routes if route.product == "accounts"}
    assert {"ais.accounts.list", "ais.accounts.get", "ais.balances.list", "ais.balances.bulk",
            "ais.transactions.list", "ais.transactions.bulk"} == accounts
    assert {route.product for route in POLICY.routes} == set(plans.plans["standard"].prices)
    assert plans.quota_args("accounts") == "standard 0;trial 100;volume 0"


def test_a_statement_prices_billable_calls_past_the_free_allowance_in_exact_decimals():
    raw = {"plan": "standard", "accounts:calls": "1210", "accounts:billable": "1200",
           "accounts:refused:ratelimit.exceeded": "10", "payments:calls": "3", "payments:billable": "3"}
    report = statement(POLICY.plans, "tpp-demo", "2026-12", raw, generated=GENERATED)
    assert report["plan"] == "standard" and report["currency"] == "GBP"
    accounts = next(line for line in report["lines"] if line["product"] == "accounts")
    assert accounts == {"product": "accounts", "calls": 1210, "billable_calls": 1200, "refused_calls": 10,
                        "free_calls_used": 1000, "unit_price": "0.0010", "amount": "0.2000"}
    assert report["total"] == "0.3500"  # 200 x 0.0010 + 3 x 0.0500
    assert report["generated"] == "2026-12-07T08:00:00+00:00"
    assert all(isinstance(line["amount"], str) for line in report["lines"])


def test_the_plan_charged_wins_then_the_assigned_then_the_default():
    assert statement(POLICY.plans, "t", "2026-12", {"plan": "trial"}, "volume")["plan"] == "trial"
    assert statement(POLICY.plans, "t", "2026-12", {}, "volume")["plan"] == "volume"
    assert statement(POLICY.plans, "t", "2026-12", {"plan": "gone"}, None)["plan"] == "standard"


def test_csv_and_html_carry_the_same_lines_and_total():
    raw = {"plan": "volume", "vrp:calls": "7", "vrp:billable": "5"}
    report = statement(POLICY.plans, "tpp-<x>", "2026-12", raw, generated=GENERATED)
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [row["product"] for row in rows] == [line["product"] for line in report["lines"]] + ["total"]
    assert rows[-1]["amount"] == report["total"] == "0.1250"
    page = render(report, "html")
    assert "tpp-&lt;x&gt;" in page and "tpp-<x>" not in page and '<td class="total">0.1250</td>' in page
    with pytest.raises(ValueError):
        render(report, "xml")


def test_reconciliation_compares_every_outcome_per_client_and_product():
    products = products_by_route(POLICY)
    records = [
        {"ts": "2026-12-01T00:00:00.001+00:00", "client_id": "a", "method": "GET",
         "route": "/open-banking/v3.1/aisp/accounts", "status": 200, "decision": "allow"},
        {"ts": "2026-12-31T23:59:59.999+00:00", "client_id": "a", "method": "GET",
         "route": "/open-banking/v3.1/aisp/accounts", "status": 429, "decision": "refuse",
         "reason": "usage.quota_exceeded"},
        {"ts": "2027-01-01T00:00:00.000+00:00", "client_id": "a", "method": "GET",  # next month
         "route": "/open-banking/v3.1/aisp/accounts", "status": 200, "decision": "allow"},
        {"ts": "2026-12-02T00:00:00.000+00:00", "client_id": None, "method": "GET",  # no TPP: not metered
         "route": "/open-banking/v3.1/aisp/accounts", "status": 401, "decision": "refuse", "reason": "token.missing"},
        {"ts": "2026-12-02T00:00:00.000+00:00", "client_id": "a", "method": "POST",  # the consent API: no product
         "route": "/open-banking/v3.1/aisp/account-access-consents", "status": 201, "decision": "allow"},
    ]
    audited = audited_counts(records, products, "2026-12")
    assert audited == {("a", "accounts"): Counter({"calls": 2, "billable": 1, "refused:usage.quota_exceeded": 1})}
    metered, _ = counts_by_product({"plan": "trial", "accounts:calls": "2", "accounts:billable": "1",
                                    "accounts:refused:usage.quota_exceeded": "1"})
    assert differences({("a", p): c for p, c in metered.items()}, audited) == []
    metered["accounts"]["billable"] += 1
    assert differences({("a", p): c for p, c in metered.items()}, audited) == [
        "a accounts billable: metered 2, audit log 1"]


def test_months_and_the_wait_until_the_next():
    assert month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=timezone.utc),
                                       datetime(2027, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(ValueError):
        month_bounds("2026-13")
    assert seconds_to_next_month("2026-12-31T23:59:59.500+00:00") == 1
    assert seconds_to_next_month("2026-02-01T00:00:00.000+00:00") == 28 * 86_400
    assert Decimal("0.0010") * 0 == Decimal("0")
