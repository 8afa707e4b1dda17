"""The README's API table lists every operation the gateway serves, and nothing it does not."""
from __future__ import annotations

import re
from pathlib import Path

from gateway.policy import load_policy
from gateway.policy.model import CONSENT_API

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `(/[^`]+)` \|", re.MULTILINE)
PREFIX = "/open-banking/v3.1"


def test_the_readme_table_lists_every_route_of_the_policy_and_the_consent_api():
    served = {(route.method, route.path) for route in load_policy(ROOT / "policies").routes}
    served |= {(method, path) for path, (_, ids) in CONSENT_API.items() for method in ids}
    listed = {(method, PREFIX + path) for method, path in ROW.findall((ROOT / "README.md").read_text())}
    assert listed == served, f"missing: {sorted(served - listed)}; not served: {sorted(listed - served)}"
