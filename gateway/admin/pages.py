"""The security team's pages on the admin listener: the audit records, browsed and filtered; each TPP's traffic,
refusals and rate-limit hits hour by hour as charts; the anomaly flags (audit/activity.py, as `obgw audit anomalies`).

Server-rendered HTML with inline SVG: no script, so the pages run under `default-src 'none'`.
"""
from __future__ import annotations

from collections.abc import Mapping
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
from gateway.store.audit import AuditReader

ENV = Environment(loader=PackageLoader("gateway.admin", "templates"), autoescape=True)
FILTERS = ("client_id", "consent_id", "subject", "decision", "reason", "route")
CHARTED = 12          # TPPs with a chart, the busiest first
RECORDS_SHOWN = 200


def chart(tpp: Activity, width: int = 480, height: int = 90) -> Markup:
    """Stacked bars per hour: calls let through (grey), refused (red), of those rate limited (orange)."""
    hours = len(tpp.calls)
    top = max(max(tpp.calls), 1)
    bar = width / hours
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height + 14}" width="{width}" height="{height + 14}" '
             f'role="img" aria-label="calls per hour of {escape(tpp.client_id)}">']
    for i in range(hours):
        x = i * bar
        for value, colour in ((tpp.calls[i], "#9aa5b1"), (tpp.refusals[i], "#d64545"),
                              (tpp.rate_limited[i], "#f0a202")):
            h = value / top * height
            if value:
                parts.append(f'<rect x="{x + 1:.1f}" y="{height - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                             f'fill="{colour}"><title>{value}</title></rect>')
    parts.append(f'<text x="0" y="{height + 12}" font-size="10">-{hours} h</text>'
                 f'<text x="{width - 30}" y="{height + 12}" font-size="10">now</text>'
                 f'<text x="{width - 70}" y="10" font-size="10">max {top}/h</text></svg>')
    return Markup("".join(parts))  # built from numbers and the escaped client id only


def overview(redis, hours: int = 24, now: datetime | None = None) -> str:
    """`redis`: the admin listener's (sync) connection, read through AuditReader."""
    start, end = window_start(now, hours)
    tpps = activity(query.search(AuditReader(redis), since=start, until=end), end, hours)
    ranked = sorted(tpps.values(), key=lambda tpp: -tpp.total)
    return ENV.get_template("admin.html").render(
        hours=hours, start=start, end=end, flags=anomalies(tpps), tpps=ranked,
        charts={tpp.client_id: chart(tpp) for tpp in ranked[:CHARTED]}, first_hour=hour_starts(end, hours)[0])


def records(redis, params: Mapping[str, str]) -> str:
    wanted = {name: params[name] for name in FILTERS if params.get(name)}
    since = None
    if params.get("since"):
        try:
            since = datetime.fromisoformat(params["since"])
            since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
        except ValueError:
            since = None
    found = query.latest(AuditReader(redis), RECORDS_SHOWN, since=since, filters=wanted)
    return ENV.get_template("records.html").render(records=found, filters=FILTERS, wanted=wanted,
                                                   since=params.get("since", ""), shown=RECORDS_SHOWN)
