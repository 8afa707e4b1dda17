"""A gateway worker process is killed (SIGKILL) in the middle of things: while a payment it forwarded is still at the
bank, and while Redis is down and its audit records sit in its local spool. The TPP sees its connection drop, the
bank is paid at most once whatever the TPP retries, no record of an answered call is lost (the dead worker's spool is
adopted and chained), `obgw audit verify` passes, and the supervisor replaces the worker so later calls succeed on
both workers.

tests/e2e/test_restart.py kills the whole gateway between calls; here one worker dies with work in flight."""
from __future__ import annotations

import os
import secrets
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from support.faults import (
    KillableRedis,
    call,
    records_by_interaction,
    until_every_worker,
    wait_for_workers,
    wait_until,
    worker_holding,
    workers,
)
from support.gateway import Gateway, bank_gateway, client_context, gateway_env
from support.openapi import assert_conforms
from support.policies import write_policy
from support.tpp import PAYMENT_CONSENTS, Tpp, access_token_for, domestic_initiation

pytestmark = pytest.mark.e2e

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"
PAYMENTS_PATH = "/open-banking/v3.1/pisp/domestic-payments"
HOLD_MS = 1500  # how long the slow bank holds the payment: the worker is killed meanwhile


def test_a_worker_killed_while_its_payment_is_at_the_bank_drops_the_connection_pays_once_and_is_replaced(
        tmp_path, pki, ledger_bank, slow_bank):
    sandbox = ledger_bank
    slow_url, control = slow_bank
    gw = bank_gateway(tmp_path / "gw", pki, (sandbox.accounts_url, slow_url), workers=2)
    tpp = Tpp(gw.base, pki, "tpp-demo")
    try:
        initiation = domestic_initiation()
        consent = tpp.payment_consent(initiation)
        assert consent.status_code == 201, consent.text
        consent_id = consent.json()["Data"]["ConsentId"]
        token = tpp.authorise_payment(consent_id, "alice", "acc-alice-current")
        cc = tpp.client_credentials("payments")["access_token"]
        context = client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")

        def read_consent():
            return call(gw, context, "GET", f"{PAYMENT_CONSENTS}/{consent_id}", cc)

        live = workers(gw)
        completed = until_every_worker(read_consent, live, lambda a: a.status == 200)  # answered before the kill

        control.post("/control/delay", params={"ms": HOLD_MS})
        key = secrets.token_hex(8)
        with ThreadPoolExecutor(2) as pool, httpx.Client(verify=tpp.context, timeout=30) as first, \
                httpx.Client(verify=tpp.context, timeout=30) as retrying:
            paying = pool.submit(tpp.pay, token, consent_id, initiation, key, http=first)
            # Only the payment: the gateway also reads the bank's status feed through the same (slow) service.
            held = wait_until(lambda: [h for h in control.get("/control/held").json() if h["path"] == PAYMENTS_PATH],
                              10, "the payment reached the bank")
            [victim] = {worker_holding(live, int(slow_url.rsplit(":", 1)[1]), held[0]["client_port"])}
            assert victim in live
            os.kill(victim, signal.SIGKILL)
            # The TPP's connection drops: no answer at all rather than a guess at the outcome.
            with pytest.raises(httpx.TransportError):
                paying.result(timeout=30)
            # Retries never pay twice. The same key is in doubt: the gateway waits 10 s for the first call to
            # finish, then answers 409 (this retry runs meanwhile); a new key finds the consent taken (400).
            same_key = pool.submit(tpp.pay, token, consent_id, initiation, key, http=retrying)
            control.post("/control/delay", params={"ms": 0})
            # The bank finished the payment anyway (as a real one would): it paid exactly once.
            wait_until(lambda: [d for d in control.get("/control/done").json() if d["path"] == PAYMENTS_PATH],
                       HOLD_MS / 1000 + 10, "the bank answered the payment")
            assert [p["consent_id"] for p in sandbox.payments_made()] == [consent_id]
            new_key = tpp.pay(token, consent_id, initiation)

            # The supervisor replaces the dead worker; from then on both workers answer on fresh connections.
            now = wait_for_workers(gw, 2, gone={victim})
            later = until_every_worker(read_consent, now, lambda a: a.status == 200, each=2)
            # No record of a call answered before the kill is lost, the dead worker's included.
            answered = completed + later
            found = records_by_interaction(gw, [a.interaction_id for a in answered])
            assert {i: len(r) for i, r in found.items() if len(r) != 1} == {}
            assert {a.worker for a in completed} == live and victim in {a.worker for a in completed}
            same_key = same_key.result(timeout=30)
        assert same_key.status_code == 409, same_key.text
        assert same_key.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Header.Invalid"
        assert new_key.status_code == 400, new_key.text
        assert new_key.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.InvalidConsentStatus"
        for refused in (same_key, new_key):
            assert_conforms(refused.json(), "OBErrorResponse1", "pisp")
        assert [p["consent_id"] for p in sandbox.payments_made()] == [consent_id]
        assert len([d for d in control.get("/control/done").json() if d["path"] == PAYMENTS_PATH]) == 1
        refusals = records_by_interaction(gw, [r.headers["x-fapi-interaction-id"] for r in (same_key, new_key)])
        assert sorted(r["reason"] for [r] in refusals.values()) == ["idempotency.pending", "payment.in_progress"]
        done = gw.cli("audit", "verify")
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        tpp.close()
        assert gw.stop() == 0


def test_a_worker_killed_during_a_redis_outage_leaves_its_spooled_records_to_be_chained_when_redis_returns(
        tmp_path, pki, backend, bank):
    redis = KillableRedis(tmp_path / "redis")
    redis.start()
    write_policy(tmp_path / "policies", backend, bank[0])
    gw = Gateway(gateway_env(tmp_path / "var", pki, tmp_path / "policies", REDIS_URL=redis.url), workers=2)
    spool = tmp_path / "var" / "audit" / "spool"
    try:
        token = access_token_for(gw, pki)
        context = client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")

        def get():
            return call(gw, context, "GET", ACCOUNTS, token)

        live = workers(gw)
        before = until_every_worker(get, live, lambda a: a.status == 200)
        redis.kill()
        try:
            refused = until_every_worker(get, live, lambda a: a.status == 503, each=3)
            victim = max(live, key=lambda pid: sum(a.worker == pid for a in refused))
            spooled = _spool_files(spool, victim)
            assert spooled and all(p.stat().st_size > 0 for p in spooled)  # its refusals wait on its disk
            os.kill(victim, signal.SIGKILL)
            # The supervisor replaces it even with Redis down; the new worker refuses cleanly too.
            now = wait_for_workers(gw, 2, gone={victim})
            refused += until_every_worker(get, now, lambda a: a.status == 503)
        finally:
            redis.start()
        after = until_every_worker(get, now, lambda a: a.status == 200, each=2, seconds=30)

        for answer in refused:
            assert answer.response.headers["retry-after"] == "1"
            assert_conforms(answer.response.json(), "OBErrorResponse1")
        answered = before + refused + after
        found = records_by_interaction(gw, [a.interaction_id for a in answered], seconds=30)
        assert {i: len(r) for i, r in found.items() if len(r) != 1} == {}  # none lost, none twice
        of_victim = [a for a in refused if a.worker == victim]
        assert len(of_victim) >= 3 and all(found[a.interaction_id][0]["reason"] == "admission.unavailable"
                                           for a in of_victim)
        wait_until(lambda: not _spool_files(spool, victim), 10, "the dead worker's spool was adopted and removed")
        done = gw.cli("audit", "verify")
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        assert gw.stop() == 0
        redis.stop()


def _spool_files(directory: Path, pid: int) -> list[Path]:
    """A worker's spool files (named after its chain id, `<host>-<pid>-<hex>`)."""
    if not directory.exists():
        return []
    return [p for p in directory.iterdir() if p.name.endswith(".jsonl") and f"-{pid}-" in p.name]
