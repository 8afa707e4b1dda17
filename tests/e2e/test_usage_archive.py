"""`obgw usage reconcile` over an archived month (issue 20, CONTRACT §14): once `obgw audit archive --all` has moved
the month's audit records out of Redis into signed segments, the month still reconciles exactly against the meter,
archive and live stream read as one log, and a planted difference is still caught."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import redis
from support.gateway import bank_gateway, tpp_client
from support.tpp import ACCOUNTS, Tpp

from gateway.store import names
from gateway.store.audit import AuditReader

pytestmark = pytest.mark.e2e

BALANCES = "/open-banking/v3.1/aisp/accounts/{}/balances"
TALLY = re.compile(r"^(\d{4}-\d{2}): agree \((\d+) metered calls, (\d+) audited\)$", re.MULTILINE)


def _calls(gw, pki, token: str, count: int) -> int:
    """`count` calls: account reads, and every third a balance read of an account the customer did not select
    (refused), so both outcomes are metered; returns how many were answered 200."""
    with tpp_client(pki, "tpp-demo", token) as http:
        statuses = [http.get(gw.base + (BALANCES.format("acc-bob-current") if i % 3 == 2 else ACCOUNTS)).status_code
                    for i in range(count)]
    assert set(statuses) == {200, 403}, statuses
    return statuses.count(200)


def _reconciled(gw, month: str) -> int:
    """Reconcile `month`, which must agree: the number of calls it found in the audit log."""
    done = gw.cli("usage", "reconcile", "--month", month)
    assert done.returncode == 0, done.stdout + done.stderr
    tally = TALLY.search(done.stdout)
    assert tally is not None and tally.group(1) == month and tally.group(2) == tally.group(3), done.stdout
    return int(tally.group(3))


def _live_records(gw) -> int:
    client = redis.Redis.from_url(gw.redis_url)
    try:
        return sum(1 for _ in AuditReader(client).records())
    finally:
        client.close()


def test_an_archived_month_still_reconciles_and_a_planted_difference_is_still_caught(tmp_path, pki, bank):
    gw = bank_gateway(tmp_path, pki, bank)
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    try:
        tpp = Tpp(gw.base, pki, "tpp-demo")
        try:
            token = tpp.consent_token(["ReadAccountsBasic", "ReadBalances"],
                                      accounts=["acc-alice-current"])["access_token"]
        finally:
            tpp.close()
        _calls(gw, pki, token, 12)
        before = _reconciled(gw, month)
        assert before >= 12

        done = gw.cli("audit", "archive", "--all")
        assert done.returncode == 0, done.stderr
        assert _live_records(gw) == 0  # the month's records are in the archive only now
        assert _reconciled(gw, month) == before

        _calls(gw, pki, token, 6)  # and some in the live stream again: one log, each record read once
        assert _reconciled(gw, month) == before + 6

        client = redis.Redis.from_url(gw.redis_url)
        key = names.usage("tpp-demo", month)
        try:
            client.hincrby(key, "accounts:refused:consent.account_not_selected", -1)  # a refusal the meter lost
            done = gw.cli("usage", "reconcile", "--month", month)
            assert done.returncode == 1, done.stdout
            assert re.search(r"tpp-demo accounts refused:consent\.account_not_selected: metered (\d+), audit log "
                             r"(\d+)", done.stdout), done.stdout
        finally:
            client.hincrby(key, "accounts:refused:consent.account_not_selected", 1)
            client.close()
        assert _reconciled(gw, month) == before + 6
    finally:
        assert gw.stop() == 0
