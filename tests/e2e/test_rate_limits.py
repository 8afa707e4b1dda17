"""Per-TPP rate limits through `obgw serve`: exact across worker processes, honest Retry-After, RateLimit headers on
every answer, tiers and route-group overrides (CONTRACT §5)."""
from __future__ import annotations

import math
import shutil
import threading
import time

import httpx
import pytest
from support.gateway import Gateway, client_context, gateway_env
from support.processes import ROOT
from support.tpp import ACCOUNTS, CONSENTS, CUSTOMER_PRESENT, Tpp

pytestmark = pytest.mark.e2e

RATE, BURST = 10, 5

LIMITS = f"""format_version: 1
tiers:
  standard: {{rate_per_second: {RATE}, burst: {BURST}}}
  premium: {{rate_per_second: 1000, burst: 500}}
  unlimited: {{unlimited: true}}
default_tier: standard
route_groups:
  consent-creation:
    routes: [ais.consents.create]
    tiers:
      standard: {{rate_per_second: 1, burst: 3}}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    root = tmp_path_factory.mktemp("gw")
    shutil.copytree(ROOT / "policies", root / "policies")
    (root / "policies" / "limits.yaml").write_text(LIMITS)
    gw = Gateway(gateway_env(root / "var", pki, root / "policies", OBGW_SERVICE_ACCOUNTS_URL=bank[0],
                             OBGW_SERVICE_PAYMENTS_URL=bank[1]), workers=4)
    gw.register_tpps(pki)
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def token(gateway, pki):
    tpp = Tpp(gateway.base, pki, "tpp-other")
    try:
        return tpp.consent_token(["ReadAccountsBasic"], accounts=["acc-alice-current"])
    finally:
        tpp.close()


def _client(pki) -> httpx.Client:
    return httpx.Client(verify=client_context(pki / "ca.pem", pki / "tpp-other.pem", pki / "tpp-other.key"),
                        timeout=15)


def _call(gateway, pki, token, http: httpx.Client | None = None) -> httpx.Response:
    """A call on `http`'s kept-alive connection, or on a new one (new connections spread over the workers)."""
    headers = {"Authorization": f"Bearer {token['access_token']}", **CUSTOMER_PRESENT}
    if http is not None:
        return http.get(gateway.base + ACCOUNTS, headers=headers)
    with _client(pki) as fresh:
        return fresh.get(gateway.base + ACCOUNTS, headers=headers)


def _refilled() -> None:
    """Wait until the bucket is whole again, so each test starts from a full one."""
    time.sleep(BURST / RATE + 0.2)


def test_the_limit_holds_exactly_across_four_workers_hammered_at_once(gateway, pki, token):
    _refilled()
    admitted, refused, stamps = [], [], []
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def hammer() -> None:
        while time.monotonic() < stop:
            answer = _call(gateway, pki, token)
            with lock:
                stamps.append(time.monotonic())
                (admitted if answer.status_code == 200 else refused).append(answer)

    threads = [threading.Thread(target=hammer) for _ in range(12)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    elapsed = max(stamps) - started
    bound = BURST + RATE * elapsed
    assert {r.status_code for r in refused} <= {429}
    assert len(refused) > len(admitted)                       # it really was hammered
    assert len(admitted) <= bound + 1, (len(admitted), bound)   # never more than rate x time + burst
    assert len(admitted) >= 0.8 * RATE * elapsed, (len(admitted), bound)  # ... and not far below it
    chains = {r["chain"] for r in gateway.audit("--client", "tpp-other", "--reason", "ratelimit.exceeded")}
    assert len(chains) >= 2  # the refusals came from several worker processes


def test_retry_after_is_honest_and_every_answer_carries_the_ratelimit_headers(gateway, pki, token):
    _refilled()
    with _client(pki) as http:  # one kept-alive connection: calls faster than the bucket refills
        answers = [_call(gateway, pki, token, http) for _ in range(3 * BURST)]
    statuses = [a.status_code for a in answers]
    assert statuses[:BURST] == [200] * BURST and 429 in statuses, statuses
    for answer in answers:
        assert answer.headers["ratelimit-policy"] == f'"standard";q={BURST};w={math.ceil(BURST / RATE)}'
        assert answer.headers["ratelimit"].startswith('"standard";r=')
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["Errors"][0]["ErrorCode"] == "OBGW.Rules.RateLimitExceeded"
    wait = int(refused.headers["retry-after"])
    assert wait >= 1
    time.sleep(wait)
    assert _call(gateway, pki, token).status_code == 200   # a retry at the moment it named is admitted


def test_a_refusal_from_a_later_stage_still_carries_the_headers(gateway, pki, token):
    _refilled()
    with _client(pki) as http:
        forbidden = http.get(gateway.base + f"{ACCOUNTS}/acc-alice-current/balances",
                             headers={"Authorization": f"Bearer {token['access_token']}", **CUSTOMER_PRESENT})
    assert forbidden.status_code == 403 and forbidden.headers["ratelimit"].startswith('"standard";r=')


def test_a_new_tier_holds_from_the_next_call_and_consent_creation_has_its_own_bucket(gateway, pki, token):
    tpp = Tpp(gateway.base, pki, "tpp-other")
    try:
        cc = tpp.client_credentials()
        created = [tpp.http.post(gateway.base + CONSENTS, headers={"Authorization": f"Bearer {cc['access_token']}"},
                                 json={"Data": {"Permissions": ["ReadAccountsBasic"]}, "Risk": {}})
                   for _ in range(4)]
        assert [c.status_code for c in created][:3] == [201, 201, 201] and created[3].status_code == 429
        assert created[0].headers["ratelimit-policy"] == '"standard.consent-creation";q=3;w=3'
        assert gateway.cli("clients", "set-tier", "tpp-other", "premium").returncode == 0
        answers = [_call(gateway, pki, token) for _ in range(8)]  # fresh connections: several workers
        assert {a.headers["ratelimit-policy"] for a in answers} == {'"premium";q=500;w=1'}
        shown = gateway.cli("clients", "show", "tpp-other")
        assert "rate-limit tier: premium" in shown.stdout and "of 500 left" in shown.stdout
        refused = gateway.cli("clients", "set-tier", "tpp-other", "platinum")
        assert refused.returncode == 2 and "unknown tier 'platinum'" in refused.stderr
    finally:
        gateway.cli("clients", "set-tier", "tpp-other", "standard")
        tpp.close()
