"""What a policy set does, rendered for people (`obgw policy explain`): the routes, or what a consent gets."""
from __future__ import annotations

from collections.abc import Iterable

from gateway.policy.compile import PolicySet
from gateway.policy.fields import exposure

_HEADER = ("METHOD", "PATH", "ROUTE", "SERVICE → UPSTREAM", "SCOPE", "PERMISSIONS (any of)", "TIMEOUT")


def render_routes(policy: PolicySet) -> str:
    """The routes as an aligned text table, in the order of routes.yaml."""
    rows = [_HEADER] + [
        (route.method, route.path, route.id, f"{route.service.name} → {route.service.url}{route.upstream_path}",
         route.scope or "-", ", ".join(sorted(route.permissions)) or "-", f"{route.timeout_ms} ms")
        for route in policy.routes
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_HEADER))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def render_exposure(policy: PolicySet, permissions: Iterable[str]) -> str:
    """Per endpoint, what a consent granting `permissions` exposes, masks and hides, and which it cannot call.

    Computed by `policy.fields.exposure`, from the same compiled rules the gateway cuts answers with.
    """
    granted = frozenset(permissions)
    lines = [f"A consent with {', '.join(sorted(granted))}:"]
    for route in policy.routes:
        if not route.permissions:
            continue
        head = f"{route.method} {route.path}"
        if not route.permissions & granted:
            lines += ["", f"{head}: refused (needs one of {', '.join(sorted(route.permissions))})"]
            continue
        if route.fields is None:
            lines += ["", f"{head}: the bank's answer as it is (no field rules)"]
            continue
        if route.fields.media_types is not None:
            types = ", ".join(sorted(route.fields.media_types))
            lines += ["", f"{head} ({route.fields.response_type})", f"  passes   the bank's file unmodified ({types})"]
            continue
        seen = exposure(route.fields, granted)
        lines += ["", f"{head} ({route.fields.response_type})"]
        lines += [f"  exposes  {path}" for path in seen.exposed]
        lines += [f"  masks    {path} (card numbers: last 4 digits; ReadPAN shows them)" for path in seen.masked]
        lines += [f"  hides    {path}" for path in seen.hidden]
        lines += [f"  records  {note}" for note in seen.records]
        lines.append("  drops    anything else the bank returns")
    return "\n".join(lines)
