"""Fixtures for the sandbox bank tests: seeded banks, in-process clients and OB schema checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4
from starlette.applications import Starlette

from gateway.sandbox.app import create_accounts_app, create_payments_app
from gateway.sandbox.data import Bank, build_bank

ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)
SEED = 7
SPECS = Path(__file__).resolve().parents[3] / "gateway" / "specs" / "ob-uk" / "v3.1.11"
_SPEC_FILES = {"aisp": "account-info-openapi.json", "pisp": "payment-initiation-openapi.json"}


@pytest.fixture(scope="session")
def anchor() -> datetime:
    return ANCHOR


@pytest.fixture(scope="session")
def seed() -> int:
    return SEED


@pytest.fixture(scope="module")
def bank() -> Bank:
    """Shared by a module's read-only tests; tests that pay use `fresh_bank`."""
    return build_bank(SEED, ANCHOR)


@pytest.fixture
def fresh_bank() -> Bank:
    return build_bank(SEED, ANCHOR)


class Client:
    """Synchronous in-process calls to an ASGI app through httpx (no sockets)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bank.test") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(call())

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture(scope="session")
def client_for() -> Callable[[Starlette], Client]:
    """Lets tests build clients for banks of their own without importing this module."""
    return Client


@pytest.fixture
def accounts_client(bank: Bank) -> Client:
    return Client(create_accounts_app(bank))


@pytest.fixture
def fresh_accounts_client(fresh_bank: Bank) -> Client:
    return Client(create_accounts_app(fresh_bank))


@pytest.fixture(scope="session")
def assert_ob() -> Callable[[object, str, str], None]:
    """assert_ob(body, "aisp" | "pisp", schema_name): the body validates against the UK OB v3.1.11 schema.

    The OpenAPI 3.0 documents are registered whole so `#/components/schemas/...` references resolve;
    their schemas use no `nullable`, so JSON Schema draft 4 reads them as written. Draft 4 does not
    check `format`, so date-times are checked here: ISO 8601 with a zone.
    """
    registry: Registry = Registry()
    for api, name in _SPEC_FILES.items():
        document = json.loads((SPECS / name).read_text())
        registry = registry.with_resource(f"urn:ob:{api}", DRAFT4.create_resource(document))
    validators: dict[tuple[str, str], Draft4Validator] = {}

    def check(body: object, api: str, schema: str) -> None:
        key = (api, schema)
        if key not in validators:
            ref = {"$ref": f"urn:ob:{api}#/components/schemas/{schema}"}
            validators[key] = Draft4Validator(ref, registry=registry)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validators[key].iter_errors(body)]
        assert not errors, "\n".join(errors[:10])
        _check_datetimes(body)

    return check


def _check_datetimes(node: object) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("DateTime") or key == "OpeningDate":
                assert datetime.fromisoformat(value).tzinfo is not None, (key, value)
            _check_datetimes(value)
    elif isinstance(node, list):
        for item in node:
            _check_datetimes(item)


@pytest.fixture
def payments_client(fresh_bank: Bank) -> Client:
    return Client(create_payments_app(fresh_bank))
