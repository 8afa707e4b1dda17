"""Metering in the admission round trip (admit.lua, issue 20) against a real Redis: counts per product, month and
outcome exact under concurrency from two clients (two workers' connections), the plan's hard quota refusing at exactly
its limit and opening again the next month, a plan change from the next call, settling after the call."""
from __future__ import annotations

import asyncio

import pytest
from test_admit_script import CLIENT_ID, CONSENT_ID, GRANT_ID, KID, _consent

from gateway.store import names
from gateway.store.admission import AdmissionStore, Metering
from gateway.store.clients import ClientStore
from gateway.store.redis import async_client
from gateway.store.usage import usage
from gateway.usage import counts_by_product

QUOTAS = "standard 0;trial 100"


@pytest.fixture
def stored(redis_client):
    from test_admit_script import CUSTOMERS

    from gateway.consents.model import expires_ms, to_record
    from gateway.store.consents import ConsentStore
    consent = _consent()
    ConsentStore(redis_client, CUSTOMERS).create(to_record(consent), expires_ms(consent), lapse_seconds=3600)
    for month in ("2031-01", "2031-02"):
        redis_client.delete(names.usage(CLIENT_ID, month))
    redis_client.delete(names.client_plan(CLIENT_ID))
    yield consent
    for month in ("2031-01", "2031-02"):
        redis_client.delete(names.usage(CLIENT_ID, month))
    redis_client.delete(names.client_plan(CLIENT_ID))


async def _calls(redis_url: str, n: int, month: str, *, product: str = "accounts", workers: int = 2,
                 permissions: tuple[str, ...] = ("ReadAccountsBasic",)) -> list[str | None]:
    """`n` admissions spread over `workers` clients at once (each its own connections, as a worker's)."""
    clients = [async_client(redis_url) for _ in range(workers)]
    stores = [AdmissionStore(client) for client in clients]
    metering = Metering(product, month, "standard", QUOTAS)
    room = [asyncio.Semaphore(32) for _ in range(workers)]  # within a worker's pool

    async def one(i: int) -> str | None:
        async with room[i % workers]:
            verdict = await stores[i % workers].admit(CLIENT_ID, CONSENT_ID, f"jti-{i}", GRANT_ID, kid=KID,
                                                      permissions=permissions, usage=metering)
        return verdict.reason
    try:
        return list(await asyncio.gather(*(one(i) for i in range(n))))
    finally:
        for client in clients:
            await client.aclose()


def _usage(redis_client, month: str):
    raw, _ = usage(redis_client, CLIENT_ID, month)
    return counts_by_product(raw)


def test_every_call_is_counted_once_per_product_and_outcome_across_workers(redis_url, redis_client, stored):
    reasons = asyncio.run(_calls(redis_url, 300, "2031-01"))
    refused = asyncio.run(_calls(redis_url, 40, "2031-01", permissions=("ReadTransactionsBasic",)))
    products, plan = _usage(redis_client, "2031-01")
    assert reasons == [None] * 300 and refused == ["consent.permission_missing"] * 40
    assert products["accounts"] == {"calls": 340, "billable": 300, "refused:consent.permission_missing": 40}
    assert plan == "standard"
    assert 0 < redis_client.ttl(names.usage(CLIENT_ID, "2031-01")) <= 400 * 86_400


def test_the_trial_quota_refuses_at_exactly_its_limit_and_opens_again_next_month(redis_url, redis_client, stored):
    ClientStore(redis_client).set_plan(CLIENT_ID, "trial")
    reasons = asyncio.run(_calls(redis_url, 130, "2031-01"))  # concurrently, from two workers
    assert reasons.count(None) == 100 and reasons.count("usage.quota_exceeded") == 30
    products, plan = _usage(redis_client, "2031-01")
    assert plan == "trial"
    assert products["accounts"] == {"calls": 130, "billable": 100, "refused:usage.quota_exceeded": 30}
    # Another product has no quota on the trial plan.
    assert asyncio.run(_calls(redis_url, 3, "2031-01", product="payments")) == [None] * 3
    # The next UTC month opens again.
    assert asyncio.run(_calls(redis_url, 5, "2031-02")) == [None] * 5


def test_a_call_not_answered_2xx_gives_its_quota_room_back(redis_url, redis_client, stored):
    ClientStore(redis_client).set_plan(CLIENT_ID, "trial")
    assert asyncio.run(_calls(redis_url, 100, "2031-01")).count(None) == 100
    assert asyncio.run(_calls(redis_url, 1, "2031-01")) == ["usage.quota_exceeded"]

    async def bank_refused_one() -> None:
        client = async_client(redis_url)
        try:  # as Admit.on_response does for a 4xx/5xx from the bank
            await AdmissionStore(client).settle(CLIENT_ID, Metering("accounts", "2031-01"), billable=-1)
        finally:
            await client.aclose()
    asyncio.run(bank_refused_one())
    assert sorted(map(str, asyncio.run(_calls(redis_url, 2, "2031-01")))) == ["None", "usage.quota_exceeded"]
    products, _ = _usage(redis_client, "2031-01")
    assert products["accounts"]["billable"] == 100 and products["accounts"]["calls"] == 103


def test_a_plan_change_holds_from_the_next_call(redis_url, redis_client, stored):
    ClientStore(redis_client).set_plan(CLIENT_ID, "trial")
    assert asyncio.run(_calls(redis_url, 101, "2031-01")).count("usage.quota_exceeded") == 1
    ClientStore(redis_client).set_plan(CLIENT_ID, "standard")
    assert asyncio.run(_calls(redis_url, 1, "2031-01")) == [None]
    assert _usage(redis_client, "2031-01")[1] == "standard"
    ClientStore(redis_client).set_plan(CLIENT_ID, "trial")
    assert asyncio.run(_calls(redis_url, 1, "2031-01")) == ["usage.quota_exceeded"]
