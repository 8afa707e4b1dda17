"""What a policy set does, rendered for people (`obgw policy explain`): one line per route."""
from __future__ import annotations

from gateway.policy.compile import PolicySet

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
