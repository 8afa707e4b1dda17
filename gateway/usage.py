"""Metering, statements and reconciliation (issue 20): what a TPP used of each API product in a UTC month, what it
costs on its plan, and the proof that the meter and the audit log agree.

The meter is one Redis hash per TPP and month (`store.names.usage`), written by admit.lua in the admission round trip
and settled after the call (pipeline.admission): `<product>:calls` (every call that named a route and a TPP),
`<product>:billable` (answered by the bank with 2xx), `<product>:refused:<reason>` (refused by the gateway, under the
reason its audit record names) and `plan` (the plan the month was last charged on). Money is Decimal, written as
strings: never a float.
"""
from __future__ import annotations

import csv
import html
import io
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import orjson

from gateway.call import STOP, Call, Flow, Stage, Upstream, required
from gateway.errors import Refusal
from gateway.policy import PolicySet
from gateway.policy.model import Plan, Plans
from gateway.store.redis import RedisError, WorkerRedis
from gateway.store.usage import usage_async

MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
FORMATS = ("json", "csv", "html")
TPP_USAGE = "/tpp/usage"
TPP_USAGE_ROUTES = {"GET": "tpp.usage.get"}  # its route id: a rate-limit group may name it
_SCOPES = frozenset(("accounts", "payments", "fundsconfirmations"))
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first moment of `month` (`YYYY-MM`) and of the next, in UTC."""
    match = MONTH.fullmatch(month)
    if match is None:
        raise ValueError(f"not a month (YYYY-MM): {month!r}")
    year, number = int(match.group(1)), int(match.group(2))
    following = (year + 1, 1) if number == 12 else (year, number + 1)
    return datetime(year, number, 1, tzinfo=timezone.utc), datetime(*following, 1, tzinfo=timezone.utc)


def counts_by_product(raw: Mapping[str, str]) -> tuple[dict[str, Counter[str]], str | None]:
    """A usage hash (decoded) as {product: Counter(calls=, billable=, refused:<reason>=)} and the plan it names."""
    products: dict[str, Counter[str]] = {}
    for field, value in raw.items():
        if field == "plan":
            continue
        product, _, outcome = field.partition(":")
        if outcome and int(value):
            products.setdefault(product, Counter())[outcome] += int(value)
    return products, raw.get("plan")


def plan_of(plans: Plans, charged: str | None, assigned: str | None) -> Plan:
    """The plan a month is billed on: the one it was last charged on, else the client's, else the default (a plan
    since removed from plans.yaml falls back the same way)."""
    for name in (charged, assigned, plans.default_plan):
        if name is not None and name in plans.plans:
            return plans.plans[name]
    return next(iter(plans.plans.values()))


def statement(plans: Plans, client_id: str, month: str, raw: Mapping[str, str], assigned: str | None = None,
              generated: datetime | None = None) -> dict[str, Any]:
    """The month's statement: per product of the plan, calls, billable calls, free allowance used, unit price and
    amount; the total. The shape `obgw usage report --format json` prints and `GET /tpp/usage` answers."""
    products, charged = counts_by_product(raw)
    plan = plan_of(plans, charged, assigned)
    lines, total = [], Decimal(0)
    for product in sorted(set(plan.prices) | set(products)):
        counts = products.get(product, Counter())
        billable = counts["billable"]
        free = min(billable, plan.free_calls.get(product, 0))
        price = Decimal(plan.prices.get(product, "0"))
        amount = price * (billable - free)
        total += amount
        lines.append({"product": product, "calls": counts["calls"], "billable_calls": billable,
                      "refused_calls": sum(n for outcome, n in counts.items() if outcome.startswith("refused:")),
                      "free_calls_used": free, "unit_price": str(price), "amount": str(amount)})
    return {"client_id": client_id, "month": month, "plan": plan.name, "currency": plan.currency, "lines": lines,
            "total": str(total),
            "generated": (generated or datetime.now(timezone.utc)).isoformat(timespec="seconds")}


_CSV_COLUMNS = ("product", "calls", "billable_calls", "refused_calls", "free_calls_used", "unit_price", "amount")


def render(report: Mapping[str, Any], form: str) -> str:
    """The statement as CSV (one row per product, then `total`) or a standalone HTML page; JSON is the dict."""
    if form == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("client_id", "month", "plan", "currency", *_CSV_COLUMNS))
        head = (report["client_id"], report["month"], report["plan"], report["currency"])
        for line in report["lines"]:
            writer.writerow((*head, *(line[column] for column in _CSV_COLUMNS)))
        writer.writerow((*head, "total", "", "", "", "", "", report["total"]))
        return out.getvalue()
    if form == "html":
        e = html.escape
        rows = "".join("<tr>" + "".join(f"<td>{e(str(line[c]))}</td>" for c in _CSV_COLUMNS) + "</tr>\n"
                       for line in report["lines"])
        return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Statement "
                f"{e(report['client_id'])} {e(report['month'])}</title></head><body>\n"
                f"<h1>Statement of {e(report['client_id'])} for {e(report['month'])}</h1>\n"
                f"<p>Plan <strong>{e(report['plan'])}</strong>, amounts in {e(report['currency'])}; generated "
                f"{e(report['generated'])}.</p>\n<table>\n<thead><tr>"
                + "".join(f"<th>{e(c)}</th>" for c in _CSV_COLUMNS) + "</tr></thead>\n<tbody>\n" + rows
                + f"</tbody>\n<tfoot><tr><th colspan=\"6\">total</th><td class=\"total\">{e(report['total'])}</td>"
                "</tr></tfoot>\n</table>\n</body></html>\n")
    raise ValueError(f"unknown format {form!r}")


def products_by_route(policy: PolicySet) -> dict[tuple[str, str], str]:
    """(method, route template as the audit log names it) → the route's product."""
    return {(route.method, route.path): route.product for route in policy.routes}


def audited_counts(records: Iterable[Mapping[str, Any]], products: Mapping[tuple[str, str], str],
                   month: str) -> dict[tuple[str, str], Counter[str]]:
    """What the audit log says was used in `month`: per (client, product), the same outcomes the meter counts."""
    found: dict[tuple[str, str], Counter[str]] = {}
    for record in records:
        client_id, ts = record.get("client_id"), record.get("ts") or ""
        product = products.get((record.get("method", ""), record.get("route") or ""))
        if client_id is None or product is None or not ts.startswith(month):
            continue
        counts = found.setdefault((client_id, product), Counter())
        counts["calls"] += 1
        status = int(record.get("status") or 0)
        if record.get("decision") == "allow" and 200 <= status < 300:
            counts["billable"] += 1
        if record.get("reason"):
            counts["refused:" + record["reason"]] += 1
    return found


def differences(metered: Mapping[tuple[str, str], Counter[str]],
                audited: Mapping[tuple[str, str], Counter[str]]) -> list[str]:
    """Every (client, product, outcome) whose metered count is not the audit log's, one line each."""
    lines = []
    for client_id, product in sorted(set(metered) | set(audited)):
        m, a = metered.get((client_id, product), Counter()), audited.get((client_id, product), Counter())
        for outcome in sorted(set(m) | set(a)):
            if m[outcome] != a[outcome]:
                lines.append(f"{client_id} {product} {outcome}: metered {m[outcome]}, audit log {a[outcome]}")
    return lines


class TppUsage(Stage):
    """`GET /tpp/usage?month=YYYY-MM`: the calling TPP's own statement (the CLI report's JSON), behind mutual TLS and
    a client-credentials token of any scope it holds. The TPP is the token's: there is no parameter naming another.
    `month` defaults to the current UTC month."""

    def __init__(self, redis: WorkerRedis, plans: Plans) -> None:
        self._redis = redis
        self._plans = plans

    async def on_request(self, call: Call) -> Flow:
        if not _SCOPES & set(str(required(call.claims, "claims").get("scope", "")).split()):
            raise Refusal("token.insufficient_scope",
                          headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", '
                                                       f'scope="{" ".join(sorted(_SCOPES))}"'})
        asked = parse_qs(call.query.decode("latin-1"), keep_blank_values=True).get("month", [call.ts[:7]])
        if len(asked) != 1 or MONTH.fullmatch(asked[0]) is None:
            raise Refusal("request.field_invalid", "The month parameter must be one UTC month, YYYY-MM.")
        try:
            raw, assigned = await usage_async(self._redis, call.tpp, asked[0])
        except (RedisError, OSError):
            raise Refusal("store.unavailable", headers={"Retry-After": "1"}) from None
        call.upstream = Upstream(200, list(_JSON), orjson.dumps(statement(self._plans, call.tpp, asked[0], raw,
                                                                          assigned)))
        return STOP
