"""What one TPP can make the gateway hold is bounded: pushed authorization requests count against its rate limit and
are capped in size, client-assertion jtis are kept by their hash under one key per TPP, and a payment consent nobody
authorises lapses and leaves Redis. Plus the client-assertion `aud` rule (FAPI 2.0: a single string)."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from pathlib import Path

import jwt
import pytest
import redis
from jwt.algorithms import ECAlgorithm
from support.gateway import Gateway, gateway_env, with_demo_tpps
from support.processes import ROOT
from support.tpp import PAYMENT_CONSENTS, Tpp, domestic_initiation

pytestmark = pytest.mark.e2e

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AUTHORISE_SECONDS = 2
TINY = {"rate_per_second": 1, "burst": 3}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    """One worker; new consents lapse after 2 s; the policy has a `tiny` tier for the PAR rate-limit test."""
    root = tmp_path_factory.mktemp("gw")
    shutil.copytree(ROOT / "policies", root / "policies")
    limits = root / "policies" / "limits.yaml"
    limits.write_text(limits.read_text().replace(
        "  unlimited: {unlimited: true}\n",
        f"  unlimited: {{unlimited: true}}\n  tiny: {{rate_per_second: {TINY['rate_per_second']}, "
        f"burst: {TINY['burst']}}}\n"))
    gw = Gateway(gateway_env(root / "var", pki, root / "policies", OBGW_SERVICE_ACCOUNTS_URL=bank[0],
                             OBGW_SERVICE_PAYMENTS_URL=bank[1],
                             OBGW_CONSENT_AUTHORISE_SECONDS=str(AUTHORISE_SECONDS)), workers=1)
    yield with_demo_tpps(gw, pki)
    assert gw.stop() == 0


@pytest.fixture
def store(gateway):
    """The gateway's own Redis (its embedded one), to see what it holds."""
    client = redis.Redis.from_url((Path(gateway.env["OBGW_VAR_DIR"]) / "redis" / "redis.url").read_text().strip())
    yield client
    client.close()


@pytest.fixture
def tpp(gateway, pki):
    client = Tpp(gateway.base, pki, "tpp-demo")
    yield client
    client.close()


def _refusal(gateway, response) -> dict:
    [record] = [r for r in gateway.audit() if r["interaction_id"] == response.headers["x-fapi-interaction-id"]]
    return record


def _oauth_error(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == error
    return response.json()


# PAR (RFC 9126 §2.3: 413 and 429 are the endpoint's answers to what it will not hold)
def test_pushed_requests_count_against_the_tpps_rate_limit(gateway, pki):
    assert gateway.cli("clients", "set-tier", "tpp-other", "tiny").returncode == 0
    other = Tpp(gateway.base, pki, "tpp-other")
    try:
        consent_id = other.create_consent()["ConsentId"]  # the consent-creation bucket: not the one pushes use
        started, answers = time.monotonic(), []
        while not answers or answers[-1].status_code == 201:
            answers.append(other.push(consent_id)[0])
            assert len(answers) <= TINY["burst"] + 3, [a.status_code for a in answers]
        elapsed = time.monotonic() - started
    finally:
        other.close()
    *accepted, refused = answers
    assert TINY["burst"] <= len(accepted) <= TINY["burst"] + elapsed * TINY["rate_per_second"]
    assert accepted[0].headers["ratelimit-policy"] == f'"tiny";q={TINY["burst"]};w=3'
    _oauth_error(refused, 429, "invalid_request")
    assert int(refused.headers["retry-after"]) >= 1 and refused.headers["ratelimit"].startswith('"tiny";r=0')
    record = _refusal(gateway, refused)
    assert (record["reason"], record["client_id"], record["status"]) == ("ratelimit.exceeded", "tpp-other", 429)


@pytest.mark.parametrize("size, status, reason", [
    (4 * 1024 + 1, 400, "oauth.invalid_request"),   # one parameter over 4 KiB
    (16 * 1024 + 1, 413, "request.too_large"),      # the whole body over 16 KiB
])
def test_a_pushed_request_over_the_size_bounds_is_refused_and_stores_nothing(gateway, tpp, store, size, status,
                                                                              reason):
    consent_id = tpp.create_consent()["ConsentId"]
    before = len(store.keys("obgw:par:*"))
    refused, _ = tpp.push(consent_id, state="s" * size)
    _oauth_error(refused, status, "invalid_request")
    assert _refusal(gateway, refused)["reason"] == reason
    assert len(store.keys("obgw:par:*")) == before
    accepted, pushed = tpp.push(consent_id, state="s" * 4096)  # at the bound: fine
    assert accepted.status_code == 201, accepted.text
    kept = json.loads(store.get("obgw:par:" + hashlib.sha256(pushed.request_uri.encode()).hexdigest()))
    assert kept["state"] == "s" * 4096


# Client assertions (RFC 7523)
def _assertion(tpp: Tpp, **claims) -> str:
    now = int(time.time())
    body = {"iss": tpp.client_id, "sub": tpp.client_id, "aud": tpp.issuer, "iat": now, "exp": now + 60,
            "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(body, ECAlgorithm.from_jwk(json.dumps(tpp.jwk)), "ES256", headers={"kid": tpp.jwk["kid"]})


def _token_with(tpp: Tpp, assertion: str):
    return tpp.http.post(tpp.metadata["token_endpoint"], data={
        "grant_type": "client_credentials", "scope": "accounts", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion})


def test_a_long_jti_is_refused_and_jtis_are_kept_by_their_hash_under_one_key(gateway, tpp, store):
    refused = _token_with(tpp, _assertion(tpp, jti="j" * 10_000))
    _oauth_error(refused, 401, "invalid_client")
    assert _refusal(gateway, refused)["reason"] == "oauth.invalid_client"
    jti = "a-jti-" + "x" * 200
    assert _token_with(tpp, _assertion(tpp, jti=jti)).status_code == 200
    names = [name.decode() for name in store.keys("obgw:{tpp-demo}:jti*")]
    assert names == ["obgw:{tpp-demo}:jtis"]
    assert hashlib.sha256(jti.encode()).hexdigest().encode() in store.zrange(names[0], 0, -1)
    assert 0 < store.ttl(names[0]) <= 300 + 2 * 30 + 1  # while the assertion could still be accepted, no longer
    assert not any(b"x" * 200 in name for name in store.keys("*"))


def test_a_client_assertion_whose_aud_is_an_array_is_refused(gateway, tpp):
    jti = str(uuid.uuid4())
    refused = _token_with(tpp, _assertion(tpp, aud=[tpp.issuer], jti=jti))
    body = _oauth_error(refused, 401, "invalid_client")
    assert "single string" in body["error_description"]
    assert _refusal(gateway, refused)["reason"] == "oauth.invalid_client"
    assert _token_with(tpp, _assertion(tpp, jti=jti)).status_code == 200  # the refused one burnt nothing


# Consents nobody authorises
def test_a_payment_consent_never_authorised_lapses_and_leaves_redis(tpp, store):
    created = tpp.payment_consent(domestic_initiation())
    assert created.status_code == 201, created.text
    consent_id = created.json()["Data"]["ConsentId"]
    record, owner = f"obgw:{{tpp-demo}}:consent:{consent_id}", f"obgw:consent-owner:{consent_id}"
    assert all(AUTHORISE_SECONDS < store.ttl(key) <= AUTHORISE_SECONDS + 3600 for key in (record, owner))
    # The idempotency key's copy of the answer expires too (UK OB: a key is valid for 24 hours).
    copies = store.keys("obgw:{tpp-demo}:idem:*")
    assert copies and all(0 < store.ttl(key) <= 86_400 for key in copies)
    token = tpp.client_credentials("payments")
    url = f"{tpp.base}{PAYMENT_CONSENTS}/{consent_id}"
    read = tpp.http.get(url, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert read.json()["Data"]["Status"] == "AwaitingAuthorisation"
    time.sleep(AUTHORISE_SECONDS + 0.2)
    read = tpp.http.get(url, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert read.status_code == 200 and read.json()["Data"]["Status"] == "Rejected"
    pushed, _ = tpp.push(consent_id, scope="openid payments")
    _oauth_error(pushed, 400, "invalid_request")
