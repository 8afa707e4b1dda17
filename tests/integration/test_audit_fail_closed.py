"""Fail closed with Redis dead: the refusal is answered and its record spooled; with no spool either, 503.

The app runs with its lifespan (httpx's ASGITransport does not run it), so the audit chain is closed as in production.
"""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import orjson
from support.ports import free_port

from gateway.app import create_app
from gateway.settings import Settings

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@contextlib.asynccontextmanager
async def _running(app):
    """The ASGI lifespan around the calls: startup before, shutdown (AuditChain.close among it) after."""
    to_app: asyncio.Queue = asyncio.Queue()
    from_app: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(from_app.get(), 10))["type"] == "lifespan.startup.complete"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gw") as client:
            yield client
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        assert (await asyncio.wait_for(from_app.get(), 10))["type"] == "lifespan.shutdown.complete"
        await asyncio.wait_for(task, 10)


def _app_with_dead_redis(var_dir: Path, pki: Path):
    """The app in-process, its Redis unreachable; the dev PKI's audit keys (beside its CA) sign and pseudonymise."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    return create_app(Settings.load(environ={"REDIS_URL": dead_redis, "OBGW_VAR_DIR": str(var_dir),
                                             "OBGW_POLICY_DIR": str(POLICIES), "OBGW_CLIENT_CA": str(pki / "ca.pem")}))


def test_a_refusal_while_redis_is_dead_is_answered_and_its_record_kept_in_the_spool(tmp_path, pki):
    app = _app_with_dead_redis(tmp_path, pki)

    async def call() -> httpx.Response:
        async with _running(app) as client:
            return await client.get("/open-banking/v3.1/aisp/nothing-here")

    response = asyncio.run(call())
    # The route refuses without Redis, so its own answer stands; nothing was forwarded.
    assert response.status_code == 404
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.NotFound"
    # Redis is still dead at shutdown: the record stays in the spool for the next worker to replay.
    spooled = list((tmp_path / "audit" / "spool").glob("*.jsonl"))
    assert len(spooled) == 1
    batches = [orjson.loads(line) for line in spooled[0].read_bytes().splitlines()]
    records = [record for batch in batches for record in batch["records"]]
    assert [(r["interaction_id"], r["status"], r["decision"], r["reason"], r["seq"]) for r in records] == [
        (response.headers["x-fapi-interaction-id"], 404, "refuse", "route.not_found", 1)]


def test_an_unrecordable_call_is_answered_503_not_with_its_result(tmp_path, pki):
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "spool").write_text("not a directory: the spool cannot be written")  # and Redis is dead
    app = _app_with_dead_redis(tmp_path, pki)

    async def call() -> httpx.Response:
        async with _running(app) as client:
            return await client.get("/open-banking/v3.1/aisp/nothing-here")

    response = asyncio.run(call())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.UnexpectedError"
    assert "audit log" in response.json()["Message"]
