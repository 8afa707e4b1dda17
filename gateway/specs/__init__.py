"""The vendored UK Open Banking files (`ob-uk/`, see its SOURCE.md), read in one place and once per process.

The policy compiler (response types, permission codes), the payment request checks, the gateway's own OpenAPI
document and the tests read them here, so a file moved or a version added is one change. What is returned is shared
by every caller: read it, never change it.
"""
from __future__ import annotations

import functools
import importlib.resources
import json

VERSION = "v3.1.11"  # the UK OB version the gateway speaks
_FILES = importlib.resources.files(__name__) / "ob-uk"
# The vendored APIs the gateway uses, by the short name of their base path (`/open-banking/v3.1/aisp`, `.../pisp`).
APIS = {"aisp": "account-info", "pisp": "payment-initiation"}


@functools.cache
def openapi(api: str) -> dict:
    """The UK OB OpenAPI document of `api` ("aisp" or "pisp"), as vendored."""
    return json.loads((_FILES / VERSION / f"{APIS[api]}-openapi.json").read_text(encoding="utf-8"))


@functools.cache
def permission_clusters() -> dict:
    """`permission-clusters.json`: each version's permission codes, and the data each permission exposes."""
    return json.loads((_FILES / "permission-clusters.json").read_text(encoding="utf-8"))
