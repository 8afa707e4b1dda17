"""The security team's pages on the admin listener: the audit records, browsed and filtered; each TPP's traffic,
refusals and rate-limit hits hour by hour as charts; the anomaly flags (audit/activity.py, as `obgw audit anomalies`).
Both read the audit log as `obgw audit search` does: the archive's segments and the live stream as one log.

Server-rendered HTML with inline SVG: no script, so the pages run under `default-src 'none'`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from jinja2 import Environment, PackageLoader
from markupsafe import Markup, escape

from gateway.audit import query
from gateway.audit.activity import (
    Activity,
    activity,
    anomalies,
    hour_starts,
    window_start,
)

ENV = Environment(loader=PackageLoader("gateway.admin", "templates"), autoescape=True)
FILTERS = ("client_id", "consent_id", "subject", "decision", "reason", "route")
CHARTED = 12          # TPPs with a chart, the busiest first
RECORDS_SHOWN = 200


class BadParameter(ValueError):
    """A query parameter a page cannot use: the listener answers 400 with this message."""


def bars(series: Sequence[tuple[Sequence[int], str]], label: str, first: str, last: str, unit: str,
         width: int = 480, height: int = 90) -> Markup:
    """Bars per slot (an hour, a month), every series drawn up from the baseline over the one before: the first is
    the whole (calls) and the later ones parts of it (refused, rate limited; billable), so each stays visible.
    `first` and `last` name the first and the last slot under the axis; `label` is the chart's accessible name."""
    slots = len(series[0][0])
    top = max(max(series[0][0], default=0), 1)
    bar = width / max(slots, 1)
    base = height + 14  # the bars stand on it, under the line naming the maximum
    parts = [f'<svg class="chart" viewBox="0 0 {width} {base + 14}" width="{width}" height="{base + 14}" '
             f'role="img" aria-label="{escape(label)}">']
    for i in range(slots):
        x = i * bar
        for values, colour in series:
            h = values[i] / top * height
            if values[i]:
                parts.append(f'<rect x="{x + 1:.1f}" y="{base - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                             f'fill="{colour}"><title>{values[i]}</title></rect>')
    parts.append(f'<text x="0" y="{base + 12}" font-size="10">{escape(first)}</text>'
                 f'<text x="{width}" y="{base + 12}" font-size="10" text-anchor="end">{escape(last)}</text>'
                 f'<text x="{width}" y="10" font-size="10" text-anchor="end">max {top}/{escape(unit)}</text></svg>')
    return Markup("".join(parts))  # built from numbers and escaped text only


def chart(tpp: Activity) -> Markup:
    """Per hour: calls let through (grey), refused (red), of those rate limited (orange)."""
    return bars([(tpp.calls, "#9aa5b1"), (tpp.refusals, "#d64545"), (tpp.rate_limited, "#f0a202")],
                f"calls per hour of {tpp.client_id}", f"-{len(tpp.calls)} h", "now", "h")


def overview(log: query.AuditLog, hours: int = 24, now: datetime | None = None) -> str:
    """`log`: the audit log the listener reads (archive and live stream, `audit.archive.ArchivedLog`)."""
    start, end = window_start(now, hours)
    tpps = activity(query.search(log, since=start, until=end), end, hours)
    ranked = sorted(tpps.values(), key=lambda tpp: -tpp.total)
    return ENV.get_template("admin.html").render(
        hours=hours, start=start, end=end, flags=anomalies(tpps), tpps=ranked,
        charts={tpp.client_id: chart(tpp) for tpp in ranked[:CHARTED]}, first_hour=hour_starts(end, hours)[0])


def records(log: query.AuditLog, params: Mapping[str, str]) -> str:
    wanted = {name: params[name] for name in FILTERS if params.get(name)}
    since = None
    if params.get("since"):
        try:
            since = datetime.fromisoformat(params["since"])
            since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
        except ValueError:
            since = None
    found = query.latest(log, RECORDS_SHOWN, since=since, filters=wanted)
    return ENV.get_template("records.html").render(records=found, filters=FILTERS, wanted=wanted,
                                                   since=params.get("since", ""), shown=RECORDS_SHOWN)
