"""The whole stack crashes at once (gateway, sandbox bank and Redis, every one SIGKILLed) and is started again on the
same addresses, Redis from its append-only file and the bank from its ledger file. Everything TPPs and customers hold
keeps working: registered clients, signing keys, consents and their state, access and refresh tokens, the payment
and its idempotent replay, the customer's dashboard session and a half-finished authorization (sessions are kept in
Redis, so the designed outcome is that they survive), and the audit log (every record there, every chain intact).

tests/e2e/test_restart.py restarts and crashes the gateway with its embedded Redis (stopped cleanly with it) and
checks one access token and the audit log; here Redis itself and the bank crash too, and the rest of the state a
user holds is checked."""
from __future__ import annotations

import signal

import pytest
from support.faults import (
    KillableRedis,
    Sandbox,
    call,
    records_by_interaction,
    until_every_worker,
    workers,
)
from support.forms import only_form
from support.gateway import Gateway, client_context, gateway_env
from support.processes import ROOT
from support.tpp import (
    CONSENTS,
    PAYMENT_CONSENTS,
    PAYMENTS,
    Browser,
    Tpp,
    domestic_initiation,
    redirect_params,
)

pytestmark = pytest.mark.e2e

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"


def _refresh(tpp: Tpp, refresh_token: str):
    return tpp.oauth.request("POST", tpp.metadata["token_endpoint"], withhold_token=True,
                             data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                             auth=tpp.oauth.client_auth("tls_client_auth"))


def _not_a_server_error(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])


def test_after_the_whole_stack_crashes_and_restarts_every_client_key_consent_token_session_and_record_survives(
        tmp_path, pki):
    redis = KillableRedis(tmp_path / "redis")
    sandbox = Sandbox(state_file=tmp_path / "ledger.jsonl")
    redis.start()
    sandbox.start()
    env = gateway_env(tmp_path / "var", pki, ROOT / "policies", REDIS_URL=redis.url,
                      OBGW_SERVICE_ACCOUNTS_URL=sandbox.accounts_url, OBGW_SERVICE_PAYMENTS_URL=sandbox.payments_url,
                      OBGW_DIRECTORY_JWKS=str(pki / "directory-jwks.json"))
    context = client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")
    first = second = None
    browsers: list[Browser] = []
    try:
        first = Gateway(env, workers=2)
        first.register_tpps(pki)
        tpp = Tpp(first.base, pki, "tpp-demo")
        try:
            ais = tpp.consent_token(["ReadAccountsBasic"], accounts=["acc-alice-current"])
            reads = [call(first, context, "GET", ACCOUNTS, ais["access_token"]) for _ in range(3)]
            assert {a.status for a in reads} == {200}
            initiation = domestic_initiation()
            payment_consent = tpp.payment_consent(initiation)
            assert payment_consent.status_code == 201, payment_consent.text
            payment_consent_id = payment_consent.json()["Data"]["ConsentId"]
            payment_token = tpp.authorise_payment(payment_consent_id, "alice", "acc-alice-current")
            key = "stack-restart-key"
            paid = tpp.pay(payment_token, payment_consent_id, initiation, key)
            assert paid.status_code == 201, paid.text
            payment_id = paid.json()["Data"]["DomesticPaymentId"]
            # A customer logged in to the dashboard, and another half-way through authorizing a new consent.
            dashboard = Browser(first.base, pki)
            browsers.append(dashboard)
            login = dashboard.http.get(first.base + "/login")
            assert dashboard.submit(login, {"username": "alice", "password": "alice-pass"}).status_code == 303
            assert dashboard.http.get(first.base + "/consents").status_code == 200
            pending = tpp.create_consent(["ReadAccountsBasic"])
            pushed_response, pushed = tpp.push(pending["ConsentId"])
            assert pushed_response.status_code == 201, pushed_response.text
            authorizing = Browser(first.base, pki)
            browsers.append(authorizing)
            consent_page = authorizing.login(authorizing.open(tpp.client_id, pushed.request_uri), "alice")
            assert consent_page.status_code == 200 and only_form(consent_page.text).choices["account_ids"]
        finally:
            tpp.close()
        keys_before = first.cli("keys", "list").stdout
        clients_before = first.cli("clients", "list").stdout
        assert keys_before and "tpp-demo" in clients_before

        # The crash: every process of the stack killed at once, nothing flushed on the way out.
        first.process.stop(sig=signal.SIGKILL)
        sandbox.kill()
        redis.kill()
        redis.start()
        sandbox.start()
        second = Gateway(env, workers=2, port=first.port)  # the same issuer URL

        assert second.cli("keys", "list").stdout == keys_before
        assert second.cli("clients", "list").stdout == clients_before
        # The access token issued before verifies (the signing keys are in Redis) and is served on every worker.
        after = until_every_worker(lambda: call(second, context, "GET", ACCOUNTS, ais["access_token"]),
                                   workers(second), lambda a: a.status == 200)
        for answer in after:
            _not_a_server_error(answer.response)
        tpp = Tpp(second.base, pki, "tpp-demo")
        try:
            refreshed = _refresh(tpp, ais["refresh_token"])
            assert refreshed.status_code == 200, refreshed.text
            assert tpp.get(ACCOUNTS, refreshed.json()["access_token"]).status_code == 200
            cc = tpp.client_credentials("accounts")
            assert tpp.get(f"{CONSENTS}/{ais['consent_id']}", cc).json()["Data"]["Status"] == "Authorised"
            pcc = tpp.client_credentials("payments")
            assert tpp.get(f"{PAYMENT_CONSENTS}/{payment_consent_id}", pcc).json()["Data"]["Status"] == "Consumed"
            # The payment is still there, and the retry under its key is the first answer, byte for byte: no
            # second payment after a crash.
            read = tpp.get(f"{PAYMENTS}/{payment_id}", payment_token)
            assert read.status_code == 200 and read.json()["Data"]["ConsentId"] == payment_consent_id
            again = tpp.pay(payment_token, payment_consent_id, initiation, key)
            assert again.status_code == 201 and again.content == paid.content
            assert [p["consent_id"] for p in sandbox.payments_made()] == [payment_consent_id]

            # The customer sessions from before live in Redis, so they survive: the dashboard is still logged in,
            # and the half-finished authorization completes (never a 500, never a second login).
            page = dashboard.http.get(second.base + "/consents")
            _not_a_server_error(page)
            assert page.status_code == 200, page.text[:500]
            assert ais["consent_id"] in page.text and payment_consent_id in page.text
            decided = authorizing.submit(consent_page, {"account_ids": "acc-alice-current", "decision": "approve"})
            _not_a_server_error(decided)
            assert decided.status_code in (302, 303), decided.text[:500]
            code = redirect_params(decided)
            assert code["state"] == pushed.state
            token = tpp.exchange(code["code"], pushed.code_verifier)
            assert tpp.get(ACCOUNTS, token).status_code == 200
        finally:
            tpp.close()

        # Every call answered before the crash has exactly one record, and the chains verify.
        found = records_by_interaction(second, [a.interaction_id for a in reads + after])
        assert {i: len(r) for i, r in found.items() if len(r) != 1} == {}
        done = second.cli("audit", "verify")
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        for browser in browsers:
            browser.close()
        if second is not None:
            assert second.stop() == 0
        if first is not None:
            first.stop()
        sandbox.stop()
        redis.stop()
