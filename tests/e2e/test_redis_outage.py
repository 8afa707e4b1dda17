"""Redis stopped mid-run: the gateway fails closed (503, nothing forwarded unchecked), records every refusal in its
local spool, and, when Redis returns, appends them to the same chains: `obgw audit verify` passes (issue: traffic
protection, item 4)."""
from __future__ import annotations

import httpx
import pytest
from support.faults import records_by_interaction, wait_until
from support.forms import only_form
from support.gateway import Gateway, gateway_env, tpp_client
from support.policies import write_policy
from support.redis_server import RedisServer
from support.tpp import access_token_for

pytestmark = pytest.mark.e2e

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"


def _seen(backend: str) -> int:
    return httpx.get(backend + "/control/seen", timeout=5).json().get("/echo/accounts", 0)


def test_with_redis_gone_nothing_is_forwarded_and_every_refusal_is_chained_when_it_returns(tmp_path, pki, backend,
                                                                                           bank):
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    write_policy(tmp_path / "policies", backend, bank[0])
    gw = Gateway(gateway_env(tmp_path / "var", pki, tmp_path / "policies", REDIS_URL=redis_server.url), workers=2)
    try:
        token = access_token_for(gw, pki)
        with tpp_client(pki, token=token) as tpp:
            assert tpp.get(gw.base + ACCOUNTS).status_code == 200
            forwarded = _seen(backend)

            redis_server.stop()
            refused = [tpp.get(gw.base + ACCOUNTS) for _ in range(10)]
            assert {r.status_code for r in refused} == {503}
            assert all(r.headers["retry-after"] == "1" for r in refused)
            assert _seen(backend) == forwarded  # not one call reached the bank unchecked
            # The authorization server and the customer pages fail closed too: 503, never a 500 or a half-done step.
            token_request = tpp.post(gw.base + "/oauth2/token", data={"grant_type": "client_credentials",
                                                                      "scope": "accounts", "client_id": "tpp-demo"})
            assert token_request.status_code == 503 and token_request.json()["error"] == "server_error"
            login = tpp.get(gw.base + "/login")  # the form itself needs nothing of Redis
            assert login.status_code == 200
            posted = tpp.post(gw.base + "/login", data={**only_form(login.text).hidden, "username": "alice",
                                                         "password": "alice-pass"})
            assert posted.status_code == 503  # a password check is counted first, so none is made

            redis_server.start()
            wait_until(lambda: tpp.get(gw.base + ACCOUNTS).status_code == 200, 20, "served again by itself")
        # The spooled refusals reach the chains a little after Redis is back.
        found = records_by_interaction(gw, [r.headers["x-fapi-interaction-id"] for r in refused], seconds=10)
        chained = [record for records in found.values() for record in records]
        assert len(chained) == 10 and {r["reason"] for r in chained} == {"admission.unavailable"}
        done = gw.cli("audit", "verify")
        assert done.returncode == 0, done.stderr
    finally:
        assert gw.stop() == 0
        redis_server.stop()
