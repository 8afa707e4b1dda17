"""A monthly quota reopening with the next UTC month (issue 20, CONTRACT §14), with real time passing the boundary.

`obgw serve` and its two workers run under libfaketime with one relative offset (so every process shares one clock),
set so that the gateway's clock reaches the next UTC month a few tens of seconds after it starts; the sandbox bank,
Redis and the test (the TPP, the customer's TOTP login, checked by the bank) keep real time. The trial plan's 100
billable `accounts` calls a month are used up, the 101st is refused with `Retry-After` to the boundary; once that has
passed the same TPP's calls pass again, the new month's statement starts from zero and the old month's is unchanged.

What the offset touches, read from the code: the month a call is metered and refused under comes from the worker's
clock (the call's `ts`: pipeline.admission.UsageMeter, ratelimit.seconds_to_next_month; admit.lua is given the month's
key). Tokens are issued and checked on the gateway's clock; the dev PKI's certificates are valid for a year (the
offset is under a month); the TPP authenticates with its certificate (tls_client_auth, no signed assertion); the
one-time code is checked by the bank. Redis's clock (rate limit, consent expiry, audit stream ids) stays real: Debian's
redis-server is built with jemalloc, which libfaketime cannot be preloaded into (libfaketime issue 130). So only the
old month is reconciled here: `usage reconcile` finds a month's records by their stream ids (Redis's clock), and this
node's gateway and Redis disagree by weeks, which a real deployment's do not.
"""
from __future__ import annotations

import glob
import json
import os
import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
from support.gateway import bank_gateway, tpp_client
from support.tiers import long_tier
from support.tpp import ACCOUNTS, Tpp

pytestmark = pytest.mark.e2e

QUOTA = 100        # the trial plan's hard monthly quota of `accounts` calls (policies/plans.yaml)
LEAD = 45          # real seconds from starting the gateway until its clock reaches the next month
FILL_SECONDS = 10  # at least this long must be left to use up the quota (about 1 s here) before the boundary


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        message = "libfaketime is not installed (Debian package libfaketime): the month rollover cannot be run"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found[0]


def _next_month(moment: datetime) -> datetime:
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def _statement(gw, month: str) -> dict:
    done = gw.cli("usage", "report", "--client", "tpp-other", "--month", month)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    del document["generated"]
    return document


def _accounts(statement: dict) -> dict:
    return next(line for line in statement["lines"] if line["product"] == "accounts")


@long_tier  # it waits for the month to turn
def test_the_quota_refuses_until_the_month_turns_and_the_new_month_starts_from_zero(tmp_path, pki, bank,
                                                                                     redis_url):
    library = _libfaketime()
    boundary = _next_month(datetime.now(timezone.utc))
    offset = int(boundary.timestamp() - time.time()) - LEAD
    turns_at = boundary.timestamp() - offset  # the real moment the gateway's clock reaches `boundary`
    old, new = (boundary - timedelta(days=1)).strftime("%Y-%m"), boundary.strftime("%Y-%m")
    # FAKETIME_DONT_FAKE_MONOTONIC is left unset: with it libfaketime 0.9.10 fails Python's time.sleep (EINVAL).
    gw = bank_gateway(tmp_path, pki, bank, REDIS_URL=redis_url, LD_PRELOAD=library, FAKETIME=f"{offset:+d}")
    try:
        for args in (("set-tier", "tpp-other", "unlimited"), ("set-plan", "tpp-other", "trial")):
            done = gw.cli("clients", *args)
            assert done.returncode == 0, done.stderr
        tpp = Tpp(gw.base, pki, "tpp-other")
        try:
            token = tpp.consent_token(["ReadAccountsBasic"], accounts=["acc-alice-current"])["access_token"]
        finally:
            tpp.close()
        left = turns_at - time.time()
        assert left > FILL_SECONDS, f"setup took too long: {left:.0f} s left before the month turns (raise LEAD)"

        with tpp_client(pki, "tpp-other", token) as http:
            first = http.get(gw.base + ACCOUNTS)
            clock = parsedate_to_datetime(first.headers["date"]).timestamp()
            assert abs(clock - (time.time() + offset)) <= 2, "the gateway does not run on the shifted clock"
            statuses = [first.status_code] + [http.get(gw.base + ACCOUNTS).status_code for _ in range(QUOTA - 1)]
            assert statuses == [200] * QUOTA
            refused = http.get(gw.base + ACCOUNTS)
            answered = time.time()
            assert answered < turns_at, "the quota was not used up before the month turned (raise LEAD)"
            assert refused.status_code == 429, refused.text
            assert refused.json()["Errors"][0]["ErrorCode"] == "OBGW.Rules.UsageQuotaExceeded"
            retry = int(refused.headers["Retry-After"])
            assert abs(retry - (turns_at - answered)) <= 2  # the seconds left until the next month on its clock

            closed = _statement(gw, old)
            assert (_accounts(closed)["calls"], _accounts(closed)["billable_calls"],
                    _accounts(closed)["refused_calls"]) == (QUOTA + 1, QUOTA, 1)

            time.sleep(max(0.0, answered + retry - time.time()))  # as a TPP honouring Retry-After would
            again = http.get(gw.base + ACCOUNTS)
            assert again.status_code == 200, again.text

        opened = _statement(gw, new)
        assert opened["plan"] == "trial" and opened["total"] == "0"
        assert (_accounts(opened)["calls"], _accounts(opened)["billable_calls"],
                _accounts(opened)["refused_calls"]) == (1, 1, 0)
        assert _statement(gw, old) == closed
        done = gw.cli("usage", "reconcile", "--month", old)
        assert done.returncode == 0, done.stdout
    finally:
        assert gw.stop() == 0
