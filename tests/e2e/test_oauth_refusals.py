"""What the authorization server and the resource API refuse, against `obgw serve` over real mutual TLS.

Authlib's client (support.tpp.Tpp) plays the TPP; hand-made requests (PyJWT assertions, forged access tokens) play
the attacker. Every refusal is checked three ways: the standard error (RFC 6749 §5.2 JSON from the authorization
server, an HTML page from the authorization endpoint, OBErrorResponse1 from the resource API), its audit record
(found by the interaction id the response echoed), and that it changed nothing (the legitimate request still works).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from support.gateway import Gateway, client_context, gateway_env
from support.processes import ROOT
from support.tpp import ACCOUNTS, CONSENTS, Browser, Tpp
from support.workers import on_every_worker

pytestmark = pytest.mark.e2e

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ATTENDED = {"x-fapi-customer-ip-address": "127.0.0.1"}  # a customer-present call: no unattended-call quota
CODE_SECONDS, PAR_SECONDS = 2, 3                          # the short-lifetime gateway's


def _start(tmp_path_factory, pki, bank, **extra: str) -> Gateway:
    root = tmp_path_factory.mktemp("gw")
    accounts, payments = bank
    gw = Gateway(gateway_env(root / "var", pki, ROOT / "policies", OBGW_SERVICE_ACCOUNTS_URL=accounts,
                             OBGW_SERVICE_PAYMENTS_URL=payments, OBGW_DIRECTORY_JWKS=str(pki / "directory-jwks.json"),
                             **extra))
    gw.register_tpps(pki)
    return gw


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    gw = _start(tmp_path_factory, pki, bank)
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def short_gateway(tmp_path_factory, pki, bank):
    """A gateway whose codes and request_uris live a few seconds: for the expiry tests only."""
    gw = _start(tmp_path_factory, pki, bank, OBGW_AUTH_CODE_SECONDS=str(CODE_SECONDS),
                OBGW_PAR_SECONDS=str(PAR_SECONDS))
    yield gw
    assert gw.stop() == 0


@pytest.fixture
def tpps():
    """Tpp(...) for the test; every one made is closed after it."""
    made: list[Tpp] = []

    def make(gw: Gateway, pki: Path, name: str = "tpp-demo", **kwargs) -> Tpp:
        tpp = Tpp(gw.base, pki, name, **kwargs)
        made.append(tpp)
        return tpp

    yield make
    for tpp in made:
        tpp.close()


# What a refusal looks like
def assert_oauth_error(response, status: int, error: str) -> dict:
    """RFC 6749 §5.2: JSON with `error` (and a description), answered to the client, never a redirect."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert "location" not in response.headers
    body = response.json()
    assert body["error"] == error, body
    assert body.get("error_description"), body
    assert set(body) <= {"error", "error_description", "error_uri"}, body
    return body


def assert_error_page(response) -> None:
    """An authorization-endpoint error before the redirect URI is trusted: a page (RFC 6749 §4.1.2.1)."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html"), response.headers
    assert "location" not in response.headers


def assert_ob_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"Code", "Id", "Message", "Errors"}, body
    assert body["Code"] == str(status) and body["Errors"][0]["ErrorCode"] == code, body
    return body


def assert_token_refused(response) -> None:
    """RFC 6750 §3: 401 with a Bearer challenge, in UK OB's error shape."""
    assert_ob_error(response, 401, "UK.OBIE.Header.Invalid")
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), response.headers


def assert_audited(gw: Gateway, *expected: tuple[object, int, str]) -> list[dict]:
    """Each (response, status, reason) has exactly one audit record: refused, with that status and reason."""
    records = {}
    for record in gw.audit("--decision", "refuse"):
        records.setdefault(record["interaction_id"], []).append(record)
    found = []
    for response, status, reason in expected:
        interaction_id = response.headers["x-fapi-interaction-id"]
        mine = records.get(interaction_id, [])
        assert len(mine) == 1, (interaction_id, reason, mine)
        record = mine[0]
        assert record["status"] == status and record["decision"] == "refuse", record
        assert record["reason"] == reason, record
        assert record["reason"].split(".")[0] in ("oauth", "token"), record
        found.append(record)
    return found


# The flow's steps, by hand where a refusal needs its raw response
def consent_status(tpp: Tpp, consent_id: str) -> str:
    token = tpp.client_credentials()
    response = tpp.http.get(f"{tpp.base}{CONSENTS}/{consent_id}",
                            headers={"Authorization": f"Bearer {token['access_token']}"})
    assert response.status_code == 200, response.text
    return response.json()["Data"]["Status"]


def authorized_code(tpp: Tpp, pki: Path) -> tuple[str, str, str]:
    """A consent approved by alice: (consent id, code, code_verifier)."""
    consent_id = tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    redirect, pushed = tpp.approve(consent_id)
    assert redirect["state"] == pushed.state, redirect
    return consent_id, redirect["code"], pushed.code_verifier


def redeem(tpp: Tpp, code: str, code_verifier: str | None):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": tpp.redirect_uri}
    if code_verifier is not None:
        data["code_verifier"] = code_verifier
    return tpp.post_form("token_endpoint", data)


def read_accounts(tpp: Tpp, token: dict | str) -> httpx.Response:
    return tpp.get(ACCOUNTS, token, headers=ATTENDED)


def assertion(tpp: Tpp, *, key=None, kid: str | None = None, alg: str = "ES256", **claims) -> str:
    """A private_key_jwt client assertion (RFC 7523 §3), signed with the TPP's key unless another is given."""
    now = int(time.time())
    body = {"iss": tpp.client_id, "sub": tpp.client_id, "aud": tpp.issuer, "iat": now, "exp": now + 60,
            "jti": str(uuid.uuid4()), **claims}
    key = key if key is not None else ECAlgorithm.from_jwk(json.dumps(tpp.jwk))
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid or tpp.jwk["kid"]})


def with_assertion(tpp: Tpp, client_assertion: str):
    """A client-credentials token request authenticated by `client_assertion`, over the Tpp's certificate."""
    return tpp.http.post(tpp.metadata["token_endpoint"], data={
        "grant_type": "client_credentials", "scope": "accounts", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_parts(header: dict, claims: dict) -> str:
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())


def hs256(secret: bytes, header: dict, claims: dict) -> str:
    """A JWS with HS256, made by hand: PyJWT (rightly) refuses a PEM public key as an HMAC secret."""
    signing_input = unsigned_parts({"typ": "JWT", **header, "alg": "HS256"}, claims)
    return signing_input + "." + b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def public_pem(jwk: dict) -> bytes:
    public = ECAlgorithm.from_jwk(json.dumps({k: jwk[k] for k in ("kty", "crv", "x", "y")}))
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# 1. PKCE at PAR
@pytest.mark.parametrize("pkce", [
    pytest.param({"code_challenge": None, "code_challenge_method": None}, id="no-pkce"),
    pytest.param({"code_challenge": None}, id="method-without-challenge"),
    pytest.param({"code_challenge_method": "plain", "code_challenge": secrets.token_urlsafe(48)}, id="plain"),
    pytest.param({"code_challenge_method": None}, id="challenge-without-method"),  # RFC 7636 §4.3: means plain
])
def test_a_pushed_request_without_s256_pkce_is_refused(gateway, pki, tpps, pkce):
    tpp = tpps(gateway, pki)
    consent_id = tpp.create_consent()["ConsentId"]
    refused, _ = tpp.push(consent_id, **pkce)
    assert_oauth_error(refused, 400, "invalid_request")
    assert_audited(gateway, (refused, 400, "oauth.invalid_request"))
    # Nothing changed: the consent still awaits authorisation and a proper push for it works.
    assert consent_status(tpp, consent_id) == "AwaitingAuthorisation"
    accepted, pushed = tpp.push(consent_id)
    assert accepted.status_code == 201 and pushed.request_uri, accepted.text


# 2. PKCE at the token endpoint
@pytest.mark.parametrize("auth", ["tls_client_auth", "private_key_jwt"])
def test_a_wrong_code_verifier_is_refused_and_issues_nothing(gateway, pki, tpps, auth):
    tpp = tpps(gateway, pki, auth=auth)
    consent_id, code, verifier = authorized_code(tpp, pki)
    wrong = secrets.token_urlsafe(48)
    assert wrong != verifier
    refused = redeem(tpp, code, wrong)
    body = assert_oauth_error(refused, 400, "invalid_grant")
    assert "access_token" not in body
    assert_audited(gateway, (refused, 400, "oauth.invalid_grant"))
    assert consent_status(tpp, consent_id) == "Authorised"


def test_a_code_without_its_code_verifier_is_refused(gateway, pki, tpps):
    tpp = tpps(gateway, pki)
    _, code, _ = authorized_code(tpp, pki)
    refused = redeem(tpp, code, None)
    assert_oauth_error(refused, 400, "invalid_request")
    assert_audited(gateway, (refused, 400, "oauth.invalid_request"))


# 3. Code replay (RFC 6749 §4.1.2)
def test_a_replayed_code_is_refused_and_revokes_its_tokens(gateway, pki, tpps):
    tpp = tpps(gateway, pki)
    _, code, verifier = authorized_code(tpp, pki)
    first = redeem(tpp, code, verifier)
    assert first.status_code == 200, first.text
    token = first.json()
    assert read_accounts(tpp, token).status_code == 200

    replay = redeem(tpp, code, verifier)
    body = assert_oauth_error(replay, 400, "invalid_grant")
    assert "access_token" not in body
    # §4.1.2: the tokens the first redemption issued are revoked: the access token at once...
    stopped = read_accounts(tpp, token)
    assert_token_refused(stopped)
    # ... and its refresh token, and introspection agrees.
    refresh = tpp.post_form("token_endpoint", {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert_oauth_error(refresh, 400, "invalid_grant")
    introspected = tpp.post_form("introspection_endpoint", {"token": token["access_token"]})
    assert introspected.status_code == 200 and introspected.json() == {"active": False}, introspected.text
    assert_audited(gateway, (replay, 400, "oauth.invalid_grant"), (stopped, 401, "token.revoked"),
                   (refresh, 400, "oauth.invalid_grant"))


# 4. Code lifetime
def test_a_code_used_after_its_lifetime_is_refused(short_gateway, pki, tpps):
    tpp = tpps(short_gateway, pki)
    consent_id, code, verifier = authorized_code(tpp, pki)
    time.sleep(CODE_SECONDS + 0.5)
    late = redeem(tpp, code, verifier)
    body = assert_oauth_error(late, 400, "invalid_grant")
    assert "access_token" not in body
    assert_audited(short_gateway, (late, 400, "oauth.invalid_grant"))
    assert consent_status(tpp, consent_id) == "Authorised"


# 5. request_uri: single use, short-lived (RFC 9126 §2.2, §4)
def test_a_request_uri_opened_twice_is_refused_the_second_time(gateway, pki, tpps):
    tpp = tpps(gateway, pki)
    consent_id = tpp.create_consent()["ConsentId"]
    response, pushed = tpp.push(consent_id)
    assert response.status_code == 201, response.text
    browser = Browser(gateway.base, pki)
    try:
        login = browser.open(tpp.client_id, pushed.request_uri)
        assert login.status_code == 200, login.text
        again = browser.open(tpp.client_id, pushed.request_uri)
        assert_error_page(again)
        assert_audited(gateway, (again, 400, "oauth.invalid_request_uri"))
        # Nothing changed: the first opening's session still completes the flow.
        consent_page = browser.login(login, "alice")
        assert consent_page.status_code == 200, consent_page.text
        answer = browser.submit(consent_page, {"account_ids": ["acc-alice-current"], "decision": "approve"})
        assert answer.status_code in (302, 303), answer.text
    finally:
        browser.close()
    code = dict(httpx.URL(answer.headers["location"]).params)["code"]
    token = redeem(tpp, code, pushed.code_verifier)
    assert token.status_code == 200, token.text
    assert read_accounts(tpp, token.json()).status_code == 200


def test_an_expired_request_uri_is_refused(short_gateway, pki, tpps):
    tpp = tpps(short_gateway, pki)
    consent_id = tpp.create_consent()["ConsentId"]
    response, pushed = tpp.push(consent_id)
    assert response.status_code == 201 and response.json()["expires_in"] == PAR_SECONDS, response.text
    time.sleep(PAR_SECONDS + 0.5)
    browser = Browser(short_gateway.base, pki)
    try:
        late = browser.open(tpp.client_id, pushed.request_uri)
    finally:
        browser.close()
    assert_error_page(late)
    assert_audited(short_gateway, (late, 400, "oauth.invalid_request_uri"))
    assert consent_status(tpp, consent_id) == "AwaitingAuthorisation"
    again, _ = tpp.push(consent_id)
    assert again.status_code == 201, again.text


# 6. Redirect URI (exact match, FAPI 1 Advanced §5.2.2-8/9)
@pytest.mark.parametrize("redirect_uri", ["https://attacker.example/callback", "https://tpp.example.com/callback/",
                                          "https://tpp.example.com/callback?next=x", None])
def test_a_pushed_request_with_an_unregistered_redirect_uri_is_refused_as_json(gateway, pki, tpps, redirect_uri):
    tpp = tpps(gateway, pki)
    consent_id = tpp.create_consent()["ConsentId"]
    refused, _ = tpp.push(consent_id, redirect_uri=redirect_uri)
    assert_oauth_error(refused, 400, "invalid_request")
    assert_audited(gateway, (refused, 400, "oauth.invalid_request"))
    assert consent_status(tpp, consent_id) == "AwaitingAuthorisation"


# 7. PAR is required (RFC 9126 §5)
def test_an_authorization_request_that_was_not_pushed_is_refused_with_a_page(gateway, pki, tpps):
    tpp = tpps(gateway, pki)
    consent_id = tpp.create_consent()["ConsentId"]
    verifier = secrets.token_urlsafe(48)
    params = {"response_type": "code", "client_id": tpp.client_id, "redirect_uri": tpp.redirect_uri,
              "scope": "openid accounts", "state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
              "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256",
              "consent_id": consent_id}
    browser = Browser(gateway.base, pki)
    try:
        refused = browser.http.get(gateway.base + "/oauth2/authorize", params=params)
    finally:
        browser.close()
    assert_error_page(refused)
    assert "set-cookie" not in refused.headers  # no login session was opened
    assert_audited(gateway, (refused, 400, "oauth.invalid_request"))
    assert consent_status(tpp, consent_id) == "AwaitingAuthorisation"


# 8. private_key_jwt assertions (RFC 7523 §3)
def test_a_hand_made_client_assertion_authenticates(gateway, pki, tpps):
    tpp = tpps(gateway, pki)
    response = with_assertion(tpp, assertion(tpp))
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize("case", ["wrong aud", "expired", "unknown key, registered kid", "unknown key and kid",
                                  "HS256 with the public key", "alg none"])
def test_a_bad_client_assertion_is_refused_and_burns_nothing(gateway, pki, tpps, case):
    tpp = tpps(gateway, pki)
    jti = str(uuid.uuid4())
    now = int(time.time())
    stranger = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": tpp.client_id, "sub": tpp.client_id, "aud": tpp.issuer, "iat": now, "exp": now + 60, "jti": jti}
    bad = {
        "wrong aud": lambda: assertion(tpp, jti=jti, aud="https://another-bank.example"),
        "expired": lambda: assertion(tpp, jti=jti, iat=now - 200, exp=now - 100),
        "unknown key, registered kid": lambda: assertion(tpp, jti=jti, key=stranger),
        "unknown key and kid": lambda: assertion(tpp, jti=jti, key=stranger, kid="not-" + tpp.jwk["kid"]),
        "HS256 with the public key": lambda: hs256(public_pem(tpp.jwk), {"kid": tpp.jwk["kid"]}, claims),
        "alg none": lambda: unsigned_parts({"alg": "none", "kid": tpp.jwk["kid"]}, claims) + ".",
    }[case]()
    refused = with_assertion(tpp, bad)
    assert_oauth_error(refused, 401, "invalid_client")
    assert_audited(gateway, (refused, 401, "oauth.invalid_client"))
    # Nothing changed: the refused assertion's jti was not spent.
    accepted = with_assertion(tpp, assertion(tpp, jti=jti))
    assert accepted.status_code == 200, accepted.text


def test_a_replayed_client_assertion_is_refused(gateway, pki, tpps):
    tpp = tpps(gateway, pki)
    once = assertion(tpp)
    first = with_assertion(tpp, once)
    assert first.status_code == 200, first.text
    replay = with_assertion(tpp, once)
    assert_oauth_error(replay, 401, "invalid_client")
    assert_audited(gateway, (replay, 401, "oauth.invalid_client"))
    # Nothing changed: the token the first use got still works (it creates a consent).
    tpp.create_consent(token=first.json())


# 9. The client certificate must be the registered one (RFC 8705 §2)
@pytest.mark.parametrize("auth", ["tls_client_auth", "private_key_jwt"])
def test_a_client_presenting_another_clients_certificate_is_refused(gateway, pki, tpps, auth):
    impostor = tpps(gateway, pki, "tpp-demo", auth=auth, cert_of="tpp-other")
    refused = impostor.post_form("token_endpoint", {"grant_type": "client_credentials", "scope": "accounts"})
    assert_oauth_error(refused, 401, "invalid_client")
    assert_audited(gateway, (refused, 401, "oauth.invalid_client"))
    # Nothing changed: both clients still authenticate with their own certificates.
    for name in ("tpp-demo", "tpp-other"):
        assert "access_token" in tpps(gateway, pki, name, auth=auth).client_credentials()


# 10. Certificate-bound tokens (RFC 8705 §3)
def test_a_token_used_with_another_certificate_is_refused(gateway, pki, tpps):
    owner, other = tpps(gateway, pki, "tpp-demo"), tpps(gateway, pki, "tpp-other")
    token = owner.consent_token(["ReadAccountsBasic"])
    stolen = read_accounts(other, token)
    assert_token_refused(stolen)
    assert_audited(gateway, (stolen, 401, "token.cnf_mismatch"))
    assert read_accounts(owner, token).status_code == 200


# 11. Forged access tokens (RFC 8725 §3.1, RFC 9068 §4)
@pytest.fixture(scope="module")
def real_token(gateway, pki) -> dict:
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    try:
        return tpp.consent_token(["ReadAccountsBasic"])
    finally:
        tpp.close()


def _forge(gateway: Gateway, tpp: Tpp, token: str, case: str) -> str:
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["jti"] = str(uuid.uuid4())
    now = int(time.time())
    if case == "own key, real kid":
        return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256", headers=header)
    if case == "own key and kid":
        return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256", headers=header | {"kid": "mine"})
    if case == "alg none":
        return unsigned_parts(header | {"alg": "none"}, claims) + "."
    if case == "HS256 with the public key":
        jwks = tpp.http.get(tpp.metadata["jwks_uri"]).json()
        return hs256(public_pem(next(k for k in jwks["keys"] if k["kid"] == header["kid"])), header, claims)
    key = gateway.signing_key(header["kid"])
    if case == "expired, real key":
        claims |= {"iat": now - 700, "nbf": now - 700, "exp": now - 100}
    elif case == "fresh, real key":  # the control: the same forgery with valid times works
        claims |= {"iat": now, "nbf": now, "exp": now + 300}
    return jwt.encode(claims, key, "ES256", headers=header)


def test_a_token_minted_with_the_gateways_own_key_works(gateway, pki, tpps, real_token):
    """The control of the forgeries below: claims copied from a real token, re-signed by the gateway's key."""
    tpp = tpps(gateway, pki)
    assert read_accounts(tpp, _forge(gateway, tpp, real_token["access_token"], "fresh, real key")).status_code == 200


@pytest.mark.parametrize("case, reason", [
    ("own key, real kid", "token.bad_signature"),
    ("own key and kid", "token.unknown_key"),
    ("alg none", "token.bad_signature"),
    ("HS256 with the public key", "token.bad_signature"),
    ("expired, real key", "token.expired"),
])
def test_a_forged_or_expired_token_is_refused(gateway, pki, tpps, real_token, case, reason):
    tpp = tpps(gateway, pki)
    refused = read_accounts(tpp, _forge(gateway, tpp, real_token["access_token"], case))
    assert_token_refused(refused)
    assert_audited(gateway, (refused, 401, reason))
    assert read_accounts(tpp, real_token).status_code == 200


# 12. Revocation (RFC 7009) holds on every worker at once
def test_a_revoked_token_is_refused_on_every_worker(gateway, pki, tpps):
    tpp = tpps(gateway, pki)
    token = tpp.consent_token(["ReadAccountsBasic"])

    def fresh_connections(count: int) -> list[httpx.Response]:
        with httpx.Client(verify=tpp.context, timeout=15,
                          limits=httpx.Limits(max_keepalive_connections=0)) as client:  # new connection each call
            return [client.get(gateway.base + ACCOUNTS, headers={
                "Authorization": f"Bearer {token['access_token']}", **ATTENDED}) for _ in range(count)]

    assert {r.status_code for r in fresh_connections(10)} == {200}  # every worker has verified (cached) it
    active = tpp.post_form("introspection_endpoint", {"token": token["access_token"]})
    assert active.status_code == 200 and active.json()["active"] is True, active.text

    revoked = tpp.post_form("revocation_endpoint", {"token": token["access_token"], "token_type_hint": "access_token"})
    assert revoked.status_code == 200, revoked.text
    next_call = read_accounts(tpp, token)
    assert_token_refused(next_call)
    # New connections until both workers have answered (which one accepts a connection is the kernel's choice).
    later, _ = on_every_worker(gateway, lambda: fresh_connections(1)[0], client_id=tpp.client_id)
    for response in later:
        assert_token_refused(response)
    assert_audited(gateway, *((r, 401, "token.revoked") for r in [next_call, *later]))
    inactive = tpp.post_form("introspection_endpoint", {"token": token["access_token"]})
    assert inactive.status_code == 200 and inactive.json() == {"active": False}, inactive.text


# 13. Refresh tokens are bound to their client (RFC 6749 §6, §10.4)
def test_a_refresh_token_presented_by_another_client_is_refused(gateway, pki, tpps):
    owner, thief = tpps(gateway, pki, "tpp-demo"), tpps(gateway, pki, "tpp-other")
    token = owner.consent_token(["ReadAccountsBasic"])
    stolen = thief.post_form("token_endpoint", {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    body = assert_oauth_error(stolen, 400, "invalid_grant")
    assert "access_token" not in body
    assert_audited(gateway, (stolen, 400, "oauth.invalid_grant"))
    # Nothing changed: the owner's refresh works and gives a working access token.
    refreshed = owner.post_form("token_endpoint", {"grant_type": "refresh_token",
                                                   "refresh_token": token["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert read_accounts(owner, refreshed.json()).status_code == 200


# 14. Only certificate-bound client authentication (FAPI 1 Advanced §5.2.2-14)
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "client_secret_jwt",
                                    "none, without a certificate"])
def test_client_authentication_without_the_certificate_is_refused(gateway, pki, tpps, method):
    tpp = tpps(gateway, pki)
    form = {"grant_type": "client_credentials", "scope": "accounts"}
    endpoint = tpp.metadata["token_endpoint"]
    if method == "client_secret_basic":
        basic = base64.b64encode(f"{tpp.client_id}:a-secret".encode()).decode()
        refused = tpp.http.post(endpoint, data=form, headers={"Authorization": f"Basic {basic}"})
    elif method == "client_secret_post":
        refused = tpp.http.post(endpoint, data=form | {"client_id": tpp.client_id, "client_secret": "a-secret"})
    elif method == "client_secret_jwt":
        now = int(time.time())
        secret_jwt = jwt.encode({"iss": tpp.client_id, "sub": tpp.client_id, "aud": tpp.issuer, "iat": now,
                                 "exp": now + 60, "jti": str(uuid.uuid4())}, secrets.token_bytes(32), "HS256")
        refused = tpp.http.post(endpoint, data=form | {"client_assertion_type": ASSERTION_TYPE,
                                                       "client_assertion": secret_jwt})
    else:
        with httpx.Client(verify=client_context(pki / "ca.pem"), timeout=15) as anonymous:
            refused = anonymous.post(endpoint, data=form | {"client_id": tpp.client_id})
    assert_oauth_error(refused, 401, "invalid_client")
    assert_audited(gateway, (refused, 401, "oauth.invalid_client"))
    assert "access_token" in tpp.client_credentials()



# From the review: hostile headers, and codes of other clients.
@pytest.mark.parametrize("header", [{"kid": 123}, {"crit": ["x"]}], ids=["kid-not-a-string", "unknown-crit"])
def test_a_jwt_header_pyjwt_refuses_is_a_clean_401_everywhere(gateway, pki, tpps, real_token, header):
    tpp = tpps(gateway, pki)
    claims = jwt.decode(real_token["access_token"], options={"verify_signature": False})
    forged = unsigned_parts({"alg": "ES256", "typ": "at+jwt", **header}, claims) + ".c2ln"
    assert_token_refused(tpp.get(ACCOUNTS, forged, headers=ATTENDED))
    assertion_like = unsigned_parts({"alg": "ES256", **header}, {"iss": tpp.client_id, "sub": tpp.client_id}) + ".c2ln"
    assert_oauth_error(with_assertion(tpp, assertion_like), 401, "invalid_client")


def test_another_client_cannot_redeem_or_burn_a_code(gateway, pki, tpps):
    owner = tpps(gateway, pki)
    _, code, verifier = authorized_code(owner, pki)
    thief = tpps(gateway, pki, "tpp-other")
    stolen = thief.post_form("token_endpoint", {"grant_type": "authorization_code", "code": code,
                                                "redirect_uri": owner.redirect_uri, "code_verifier": verifier})
    assert_oauth_error(stolen, 400, "invalid_grant")
    assert redeem(owner, code, verifier).status_code == 200  # the code was not burnt by the other client's try
