"""If the audit record cannot be stored, the caller gets 503 and not the answer (fail closed)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from gateway.app import create_app
from gateway.settings import Settings
from support.ports import free_port

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def test_an_unrecordable_call_is_answered_503_not_with_its_result(tmp_path):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings.load(environ={"REDIS_URL": dead_redis, "OBGW_VAR_DIR": str(tmp_path),
                                      "OBGW_POLICY_DIR": str(POLICIES)})
    app = create_app(settings)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gw") as client:
            return await client.get("/open-banking/v3.1/aisp/nothing-here")

    response = asyncio.run(call())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.UnexpectedError"
    assert "audit log" in response.json()["Message"]
