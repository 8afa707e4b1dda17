"""Metering, plans and statements through `obgw serve` with two workers (issue 20, CONTRACT §14): every call counted
per TPP, product and outcome exactly under concurrent load (calls sent == metered == audit records), the trial plan's
quota refusing at exactly 100 with Retry-After to the next UTC month, a plan change from the next call, statements in
each format matching the audit log, `usage reconcile` catching a planted difference, `/tpp/usage` per TPP only."""
from __future__ import annotations

import csv
import io
import json
import re
import secrets
import threading
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import redis
from support.gateway import tpp_client
from support.tpp import ACCOUNTS, Tpp, domestic_initiation

from gateway.ratelimit import seconds_to_next_month
from gateway.store import names

pytestmark = pytest.mark.e2e

BALANCES = "/open-banking/v3.1/aisp/accounts/{}/balances"


def _month() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m")


def _report(gateway, client_id: str, form: str = "json"):
    done = gateway.cli("usage", "report", "--client", client_id, "--month", _month(), "--format", form)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if form == "json" else done.stdout


def _line(report: dict, product: str) -> dict:
    return next(line for line in report["lines"] if line["product"] == product)


def _audited(gateway, client_id: str, route: str) -> Counter:
    records = [r for r in gateway.audit("--client", client_id) if r.get("route") == route and r["ts"][:7] == _month()]
    return Counter({"calls": len(records),
                    "billable": sum(1 for r in records if r["decision"] == "allow" and 200 <= r["status"] < 300),
                    **Counter(f"refused:{r['reason']}" for r in records if r.get("reason"))})


@pytest.fixture(scope="module")
def demo_token(gateway, pki):
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    try:
        return tpp.consent_token(["ReadAccountsBasic", "ReadBalances"], accounts=["acc-alice-current"])
    finally:
        tpp.close()


@pytest.fixture(scope="module")
def other_token(gateway, pki):
    tpp = Tpp(gateway.base, pki, "tpp-other")
    try:
        return tpp.consent_token(["ReadAccountsBasic"], accounts=["acc-alice-current"])
    finally:
        tpp.close()


def test_counts_are_exact_per_product_and_outcome_under_concurrent_load(gateway, pki, demo_token):
    statuses: Counter = Counter()
    lock = threading.Lock()

    def hammer(worker: int) -> None:
        with tpp_client(pki, "tpp-demo", demo_token["access_token"]) as http:
            for i in range(40):
                # Mostly account reads; some balance reads of an account the customer did not select (refused).
                path = BALANCES.format("acc-bob-current") if i % 10 == 9 else ACCOUNTS
                status = http.get(gateway.base + path).status_code
                with lock:
                    statuses[(path == ACCOUNTS, status)] += 1

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = sum(statuses.values())
    assert sent == 320
    assert statuses[(True, 429)] > 0, statuses  # the rate limit (burst 100) refused some: an outcome of its own
    report = _report(gateway, "tpp-demo")
    accounts = _line(report, "accounts")
    audited = _audited(gateway, "tpp-demo", ACCOUNTS) + _audited(gateway, "tpp-demo", BALANCES.format("{AccountId}"))
    assert accounts["calls"] == sent == audited["calls"]
    assert accounts["billable_calls"] == statuses[(True, 200)] == audited["billable"]
    assert accounts["refused_calls"] == sent - statuses[(True, 200)] == (
        audited["refused:ratelimit.exceeded"] + audited["refused:consent.account_not_selected"])
    assert gateway.cli("usage", "reconcile", "--month", _month()).returncode == 0


def test_the_trial_quota_refuses_at_exactly_100_and_a_plan_change_holds_from_the_next_call(gateway, pki,
                                                                                            other_token):
    for args in (("set-tier", "tpp-other", "unlimited"), ("set-plan", "tpp-other", "trial")):
        done = gateway.cli("clients", *args)
        assert done.returncode == 0, done.stderr
    before = _line(_report(gateway, "tpp-other"), "accounts")["billable_calls"]
    statuses: Counter = Counter()
    lock = threading.Lock()

    def hammer() -> None:
        with tpp_client(pki, "tpp-other", other_token["access_token"]) as http:
            for _ in range(20):
                response = http.get(gateway.base + ACCOUNTS)
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 429:
                        refused.append(response)

    refused: list = []
    threads = [threading.Thread(target=hammer) for _ in range(6)]  # 120 at once over both workers
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses[200] == 100 - before and statuses[429] == 120 - statuses[200], statuses
    body = refused[0].json()
    assert body["Errors"][0]["ErrorCode"] == "OBGW.Rules.UsageQuotaExceeded"
    retry = int(refused[0].headers["Retry-After"])
    assert abs(retry - seconds_to_next_month(datetime.now(timezone.utc).isoformat())) <= 60
    report = _report(gateway, "tpp-other")
    assert report["plan"] == "trial" and _line(report, "accounts")["billable_calls"] == 100
    assert _line(report, "accounts")["amount"] == "0" and report["total"] == "0"
    audited = _audited(gateway, "tpp-other", ACCOUNTS)
    assert audited["refused:usage.quota_exceeded"] == statuses[429] == _line(report, "accounts")["refused_calls"]
    assert audited["billable"] == 100

    with tpp_client(pki, "tpp-other", other_token["access_token"]) as http:
        assert gateway.cli("clients", "set-plan", "tpp-other", "standard").returncode == 0
        assert http.get(gateway.base + ACCOUNTS).status_code == 200  # the very next call
        assert gateway.cli("clients", "set-plan", "tpp-other", "trial").returncode == 0
        assert http.get(gateway.base + ACCOUNTS).status_code == 429
    assert gateway.cli("usage", "reconcile", "--month", _month()).returncode == 0


def test_statements_agree_in_every_format_with_the_audit_log(gateway, pki, demo_token):
    with tpp_client(pki, "tpp-demo", demo_token["access_token"]) as http:
        for _ in range(3):
            http.get(gateway.base + BALANCES.format("acc-alice-current"))
    report = _report(gateway, "tpp-demo")
    assert report["client_id"] == "tpp-demo" and report["month"] == _month() and report["plan"] == "standard"
    assert report["currency"] == "GBP"
    assert {"product", "calls", "billable_calls", "amount"} <= set(report["lines"][0])
    accounts = _line(report, "accounts")
    audited = _audited(gateway, "tpp-demo", ACCOUNTS) + _audited(gateway, "tpp-demo", BALANCES.format("{AccountId}"))
    assert accounts["billable_calls"] == audited["billable"] and accounts["calls"] == audited["calls"]
    # standard: 1000 free accounts calls a month, then 0.0010 each: exact decimals, never floats.
    assert Decimal(accounts["amount"]) == Decimal("0.0010") * max(0, audited["billable"] - 1000)
    assert Decimal(report["total"]) == sum(Decimal(line["amount"]) for line in report["lines"])
    rows = list(csv.DictReader(io.StringIO(_report(gateway, "tpp-demo", "csv"))))
    assert rows[-1]["product"] == "total" and rows[-1]["amount"] == report["total"]
    csv_accounts = next(row for row in rows if row["product"] == "accounts")
    assert int(csv_accounts["billable_calls"]) == audited["billable"]
    page = _report(gateway, "tpp-demo", "html")
    assert re.search(rf'<td class="total">{re.escape(report["total"])}</td>', page)
    assert f"<td>{audited['billable']}</td>" in page


def test_reconcile_catches_a_planted_difference(gateway):
    month = _month()
    assert gateway.cli("usage", "reconcile", "--month", month).returncode == 0
    client = redis.Redis.from_url(gateway.redis_url)
    key = names.usage("tpp-demo", month)
    try:
        client.hincrby(key, "accounts:billable", 1)  # one call billed that the audit log does not have
        done = gateway.cli("usage", "reconcile", "--month", month)
        assert done.returncode == 1
        assert re.search(r"tpp-demo accounts billable: metered (\d+), audit log (\d+)", done.stdout), done.stdout
    finally:
        client.hincrby(key, "accounts:billable", -1)
        client.close()
    assert gateway.cli("usage", "reconcile", "--month", month).returncode == 0


def test_tpp_usage_answers_each_tpp_its_own_statement_only(gateway, pki):
    month = _month()
    for name in ("tpp-demo", "tpp-other"):
        tpp = Tpp(gateway.base, pki, name)
        try:
            token = tpp.client_credentials("accounts")["access_token"]
        finally:
            tpp.close()
        with tpp_client(pki, name, token) as http:
            # A parameter naming another TPP changes nothing: the statement is the token's TPP's.
            answer = http.get(gateway.base + "/tpp/usage", params={"month": month, "client_id": "tpp-demo"})
            assert answer.status_code == 200, answer.text
            statement = answer.json()
            assert statement["client_id"] == name
            cli = _report(gateway, name)
            assert {k: v for k, v in statement.items() if k != "generated"} == \
                {k: v for k, v in cli.items() if k != "generated"}
            assert http.get(gateway.base + "/tpp/usage", params={"month": "2026-13"}).status_code == 400
        with tpp_client(pki, "tpp-other" if name == "tpp-demo" else "tpp-demo", token) as stolen:
            assert stolen.get(gateway.base + "/tpp/usage", params={"month": month}).status_code == 401
        with tpp_client(pki, name) as anonymous:
            assert anonymous.get(gateway.base + "/tpp/usage", params={"month": month}).status_code == 401


def test_payments_replays_and_refusals_before_admission_are_metered_as_audited(gateway, pki):
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    try:
        initiation = domestic_initiation()
        consent = tpp.payment_consent(initiation)
        assert consent.status_code == 201, consent.text
        consent_id = consent.json()["Data"]["ConsentId"]
        token = tpp.authorise_payment(consent_id, "alice", "acc-alice-current")
        before = _line(_report(gateway, "tpp-demo"), "payments")
        key = secrets.token_hex(8)
        answers = [tpp.pay(token, consent_id, initiation, key=key) for _ in range(3)]  # one payment, two replays
        assert [a.status_code for a in answers] == [201] * 3
        unsigned = tpp.pay(token, consent_id, initiation, signed=False)  # refused before Admit
        assert unsigned.status_code in (400, 401), unsigned.text
    finally:
        tpp.close()
    after = _line(_report(gateway, "tpp-demo"), "payments")
    assert after["calls"] - before["calls"] == 4
    assert after["billable_calls"] - before["billable_calls"] == 3  # a replay is billed as the answer it repeats
    assert after["refused_calls"] - before["refused_calls"] == 1
    assert Decimal(after["amount"]) == Decimal("0.0500") * after["billable_calls"]
    done = gateway.cli("usage", "reconcile", "--month", _month())
    assert done.returncode == 0, done.stdout
