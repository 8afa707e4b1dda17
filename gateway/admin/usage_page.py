"""The admin usage page (issue 20): each TPP's calls and billable calls per API product, month by month, as charts,
and the statements `obgw usage report` prints for those months (`gateway.usage.statement`: one pricing, one plan
choice).

The meter keeps one hash per TPP and UTC month (gateway/usage.py), so the month is the finest step it answers
exactly; a chart per day would need admit.lua to count per day as well.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from markupsafe import Markup
from redis import Redis

from gateway.admin.pages import ENV, BadParameter, bars
from gateway.policy.model import Plans
from gateway.store.clients import ClientStore
from gateway.store.usage import usage
from gateway.usage import month_bounds, statement

MONTHS_SHOWN = 6      # by default
MONTHS_MOST = 24
CALLS, BILLABLE = "#9aa5b1", "#1f5f99"


@dataclasses.dataclass(frozen=True, slots=True)
class TppUsage:
    client_id: str
    statements: list[dict[str, Any]]   # one per month, oldest first, as `obgw usage report --format json` prints

    def series(self, product: str, field: str) -> list[int]:
        """`field` (`calls`, `billable_calls`) of one product, month by month."""
        return [next((line[field] for line in s["lines"] if line["product"] == product), 0) for s in self.statements]

    @property
    def products(self) -> list[str]:
        """The products it called in these months, by name."""
        return sorted({line["product"] for s in self.statements for line in s["lines"] if line["calls"]})

    @property
    def calls(self) -> int:
        return sum(line["calls"] for s in self.statements for line in s["lines"])

    def charts(self) -> list[tuple[str, Markup]]:
        """(product, its chart): every call month by month, the billable ones drawn over them."""
        first, last = self.statements[0]["month"], self.statements[-1]["month"]
        return [(product, bars([(self.series(product, "calls"), CALLS),
                                (self.series(product, "billable_calls"), BILLABLE)],
                               f"{product} calls of {self.client_id} per month from {first} to {last}",
                               first, last, "month", height=60))
                for product in self.products]


def months_ending(last: str, count: int) -> list[str]:
    """The `count` UTC months up to `last` (YYYY-MM), oldest first."""
    year, month = (int(part) for part in last.split("-"))
    index = year * 12 + month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count + 1, index + 1)]


def _months(params: Mapping[str, str], now: datetime) -> list[str]:
    last = params.get("until") or now.strftime("%Y-%m")
    try:
        month_bounds(last)
    except ValueError as exc:
        raise BadParameter(f"until: {exc}") from None
    count = params.get("months") or str(MONTHS_SHOWN)
    if not count.isdigit() or not 1 <= int(count) <= MONTHS_MOST:
        raise BadParameter(f"months: a whole number from 1 to {MONTHS_MOST}, not {count!r}")
    return months_ending(last, int(count))


def page(redis: Redis, plans: Plans, params: Mapping[str, str], now: datetime | None = None) -> str:
    """`?client_id=` (one TPP; default every registered one), `?until=YYYY-MM` (the last month shown; default this
    one), `?months=N` (how many, 1 to 24; default 6)."""
    now = now or datetime.now(timezone.utc)
    months = _months(params, now)
    registered = [document["client_id"] for document in ClientStore(redis).all()]
    wanted = params.get("client_id")
    if wanted and wanted not in registered:
        raise BadParameter(f"client_id: no registered client {wanted!r}")
    tpps = []
    for client_id in [wanted] if wanted else registered:
        statements = [statement(plans, client_id, month, *usage(redis, client_id, month), generated=now)
                      for month in months]
        tpps.append(TppUsage(client_id, statements))
    used = sorted((tpp for tpp in tpps if tpp.calls), key=lambda tpp: (-tpp.calls, tpp.client_id))
    return ENV.get_template("usage.html").render(
        months=months, client_id=wanted or "", tpps=used, idle=[tpp.client_id for tpp in tpps if not tpp.calls],
        generated=now.isoformat(timespec="seconds"), calls_colour=CALLS, billable_colour=BILLABLE)
