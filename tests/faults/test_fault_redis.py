"""Redis crashes (SIGKILL, not a clean stop) while TPPs are calling, and comes back on the same address with its
append-only file: the gateway fails closed while it is gone, recovers by itself when it returns (same gateway, same
workers), and the audit log has exactly one record of every call that got an answer, in intact chains.

tests/e2e/test_redis_outage.py proves a clean stop with one caller; this is a crash under concurrent load."""
from __future__ import annotations

import contextlib
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import pytest
from support.faults import (
    KillableRedis,
    Load,
    call,
    records_by_interaction,
    until_every_worker,
    wait_until,
    workers,
)
from support.gateway import Gateway, bank_gateway, client_context, gateway_env
from support.openapi import assert_conforms
from support.policies import write_policy
from support.receiver import receiver_in_thread
from support.tpp import PAYMENT_CONSENTS, Tpp, access_token_for, domestic_initiation

pytestmark = pytest.mark.e2e

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"


def _forwarded(backend: str) -> int:
    """Calls that reached the test back-end's accounts path (it counts them on arrival)."""
    return httpx.get(backend + "/control/seen", timeout=5).json().get("/echo/accounts", 0)


def test_a_redis_crash_under_load_is_503_with_retry_after_forwards_nothing_and_heals_without_a_restart(
        tmp_path, pki, backend, bank):
    redis = KillableRedis(tmp_path / "redis")
    redis.start()
    write_policy(tmp_path / "policies", backend, bank[0])
    gw = Gateway(gateway_env(tmp_path / "var", pki, tmp_path / "policies", REDIS_URL=redis.url), workers=2)
    receiving = contextlib.ExitStack()
    try:
        receiver = receiving.enter_context(receiver_in_thread())  # the TPP's notification endpoint
        token = access_token_for(gw, pki)
        done = gw.cli("clients", "add", "tpp-demo", "--from-json", str(pki / "tpp-demo.json"),
                      "--notification-url", receiver.url, "--replace")
        assert done.returncode == 0, done.stderr
        # The load below is more than the default tier's 20/s; a 429 is not what this test is about.
        assert gw.cli("clients", "set-tier", "tpp-demo", "unlimited").returncode == 0
        serving = workers(gw)
        assert len(serving) == 2
        context = client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")
        forwarded_before = _forwarded(backend)

        with Load(lambda: call(gw, context, "GET", ACCOUNTS, token), threads=3, max_calls=150, seconds=80) as load:
            load.wait_for(lambda answers: sum(a.status == 200 for a in answers) >= 9, 20, "9 answers before")
            redis.kill()
            killed = time.monotonic()
            load.wait_for(lambda answers: sum(a.started > killed and a.status == 503 for a in answers) >= 12
                          and time.monotonic() > killed + 1.5, 20, "12 refusals while Redis is dead")
            restarting = time.monotonic()
            redis.start()
            restarted = time.monotonic()
            load.wait_for(lambda answers: sum(a.started > restarted and a.status == 200 for a in answers) >= 9, 30,
                          "9 answers after Redis is back")
        answers = load.answers

        # What the TPPs saw: an answer to every call (no dropped connection), 200 or a clean 503, never a 500.
        assert [a.error for a in answers if a.error] == []
        assert Counter(a.status for a in answers).keys() <= {200, 503}, Counter(a.status for a in answers)
        during = [a for a in answers if a.started > killed and a.ended < restarting]
        assert during and {a.status for a in during} == {503}   # fail closed: not one 200 while Redis is dead
        for refused in (a for a in answers if a.status == 503):
            assert refused.response.headers["retry-after"] == "1"
            assert refused.response.headers["x-fapi-interaction-id"] == refused.interaction_id
            assert_conforms(refused.response.json(), "OBErrorResponse1")
            assert refused.error_code() == "UK.OBIE.UnexpectedError"
        # Nothing went to the bank unchecked: it saw exactly the calls that were answered 200.
        assert _forwarded(backend) - forwarded_before == sum(a.status == 200 for a in answers)
        # It healed by itself: the same gateway and the same two workers answer again.
        assert gw.process.popen.poll() is None and workers(gw) == serving
        late = [a for a in answers if a.started > restarted + 2]
        assert {a.status for a in late} <= {200}, Counter(a.status for a in late)
        # The authorization server's own (synchronous) Redis connection came back too.
        tpp = Tpp(gw.base, pki, "tpp-demo")
        try:
            assert tpp.create_consent(["ReadAccountsBasic"])["Status"] == "AwaitingAuthorisation"
        finally:
            tpp.close()

        # Exactly one audit record per answered call, saying what the TPP was told; the chains verify.
        records = records_by_interaction(gw, [a.interaction_id for a in answers])
        counts = Counter(len(found) for found in records.values())
        assert counts == {1: len(answers)}, counts
        for answer in answers:
            [record] = records[answer.interaction_id]
            assert record["status"] == answer.status
            if answer.status == 503:
                assert record["reason"] == "admission.unavailable", record
        assert len({r[0]["chain"] for r in records.values()}) == 2  # both workers took part
        done = gw.cli("audit", "verify")
        assert done.returncode == 0, done.stdout + done.stderr

        # The workers' background notifier came back too: a revocation now stops the token on every worker and
        # the TPP is told, once.
        consent_id = jwt.decode(token, options={"verify_signature": False})["openbanking_intent_id"]
        assert gw.cli("consents", "revoke", consent_id).returncode == 0
        stopped = until_every_worker(lambda: call(gw, context, "GET", ACCOUNTS, token), serving,
                                     lambda a: a.status == 403)
        assert {a.status for a in stopped} == {403}
        wait_until(lambda: receiver.requests, 15, "the revocation was notified to the TPP")
        time.sleep(0.5)
        assert len(receiver.requests) == 1
    finally:
        receiving.close()
        assert gw.stop() == 0
        redis.stop()


def test_a_payment_the_bank_made_while_redis_crashed_is_not_answered_as_if_nothing_was_done(
        tmp_path, pki, ledger_bank, slow_bank):
    slow_url, control = slow_bank
    redis = KillableRedis(tmp_path / "redis")
    redis.start()
    gw = bank_gateway(tmp_path / "gw", pki, (ledger_bank.accounts_url, slow_url), REDIS_URL=redis.url)
    tpp = Tpp(gw.base, pki, "tpp-demo")
    try:
        initiation = domestic_initiation()
        consent = tpp.payment_consent(initiation)
        assert consent.status_code == 201, consent.text
        consent_id = consent.json()["Data"]["ConsentId"]
        token = tpp.authorise_payment(consent_id, "alice", "acc-alice-current")
        control.post("/control/delay", params={"ms": 1500})
        with ThreadPoolExecutor(1) as pool:
            paying = pool.submit(tpp.pay, token, consent_id, initiation, secrets.token_hex(8))
            wait_until(lambda: control.get("/control/held").json(), 10, "the payment reached the bank")
            redis.kill()  # while the bank holds the payment: admitted and claimed, not yet settled
            answer = paying.result(timeout=30)
        wait_until(lambda: control.get("/control/done").json(), 10, "the bank answered the payment")
        control.post("/control/delay", params={"ms": 0})
        redis.start()
        # The bank paid, exactly once; a retry (another key, Redis back) pays nothing more.
        assert [p["consent_id"] for p in ledger_bank.payments_made()] == [consent_id]
        retry = wait_until(lambda: (r := tpp.pay(token, consent_id, initiation)).status_code != 503 and r, 20,
                           "a retry answered once Redis is back")
        assert 400 <= retry.status_code < 500, retry.text
        assert [p["consent_id"] for p in ledger_bank.payments_made()] == [consent_id]

        # What the TPP was told: the payment, or that its outcome is unknown, never "nothing was done, try again".
        told = answer.json() if answer.content else {}
        assert answer.status_code == 201 or (answer.status_code in (502, 504) and "retry-after" not in answer.headers
                                             and "nothing was done" not in told.get("Message", "")), \
            (answer.status_code, dict(answer.headers), answer.text)
        # ... and, once Redis is back, the consent the bank paid under reads Consumed.
        cc = tpp.client_credentials("payments")
        status = wait_until(lambda: tpp.get(f"{PAYMENT_CONSENTS}/{consent_id}", cc).json()["Data"]["Status"]
                            == "Consumed", 10, "the paid consent reads Consumed")
        assert status
    finally:
        tpp.close()
        gw.stop()
        redis.stop()
