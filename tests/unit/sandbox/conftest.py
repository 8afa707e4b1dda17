"""Fixtures for the sandbox bank tests: seeded banks, in-process clients and OB schema checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from support.openapi import assert_conforms

from gateway.sandbox.app import create_accounts_app, create_payments_app
from gateway.sandbox.data import Bank, build_bank

ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)
SEED = 7


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
def every_page() -> Callable[..., list[dict]]:
    """every_page(client, url, headers): the answer to `url`, then to each Links.Next in turn, until there is none."""

    def follow(client: Client, url: str, headers: dict[str, str]) -> list[dict]:
        answers: list[dict] = []
        next_url: str | None = url
        while next_url is not None:
            response = client.get(next_url, headers=headers)
            assert response.status_code == 200, response.text
            answers.append(response.json())
            next_url = answers[-1]["Links"].get("Next")
            assert len(answers) <= answers[0]["Meta"]["TotalPages"], "Links.Next went past Meta.TotalPages"
        return answers

    return follow


@pytest.fixture(scope="session")
def assert_ob() -> Callable[[object, str, str], None]:
    """assert_ob(body, "aisp" | "pisp" | "cbpii", schema_name): the body validates against the UK OB v3.1.11 schema."""
    return lambda body, api, schema: assert_conforms(body, schema, api)


@pytest.fixture
def payments_client(fresh_bank: Bank) -> Client:
    return Client(create_payments_app(fresh_bank))


class Clock:
    """The bank's time, set by the test: starts the morning after the anchor (the seeded history's end)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(ANCHOR + timedelta(days=1, hours=9))


@pytest.fixture
def clocked_bank(clock: Clock) -> Bank:
    """A fresh bank that runs on `clock`: for payments that fall due later."""
    return build_bank(SEED, ANCHOR, clock=clock)


@pytest.fixture
def clocked_payments(clocked_bank: Bank) -> Client:
    return Client(create_payments_app(clocked_bank))


@pytest.fixture
def clocked_accounts(clocked_bank: Bank) -> Client:
    return Client(create_accounts_app(clocked_bank))
