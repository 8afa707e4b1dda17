"""A UK Open Banking style TPP, unmodified: its authorization request as a signed request object (RFC 9101, PS256 or
ES256) pushed through PAR, the intent id as the essential claim `openbanking_intent_id`, and the response as a JWT
(JARM) - through `obgw serve` and the sandbox bank, the TPP's JWTs made and read with joserfc (not the gateway's
PyJWT). Wrongly made request objects are refused at PAR with `invalid_request_object`."""
from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from support.gateway import client_context
from support.tpp import Browser, Tpp

from gateway.crypto import b64url

pytestmark = pytest.mark.e2e

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"


@pytest.fixture(scope="module")
def rsa_key(gateway, pki, tmp_path_factory) -> RSAKey:
    """An RSA key registered for tpp-demo beside its EC key (the client's JWKS now holds both), for PS256."""
    key = RSAKey.generate_key(2048)
    public = key.as_dict(private=False)
    public["kid"] = key.thumbprint()
    registration = json.loads((pki / "tpp-demo.json").read_text())
    ec_public = {k: v for k, v in registration["private_jwk"].items() if k != "d"}
    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [ec_public, public]}))
    done = gateway.cli("clients", "add", "tpp-demo", "--replace", "--cert", str(pki / "tpp-demo.pem"),
                       "--redirect-uri", registration["redirect_uri"], "--jwks", str(jwks), "--name", "Demo TPP")
    assert done.returncode == 0, done.stderr
    return RSAKey.import_key(key.as_dict(private=True), {"kid": public["kid"]})


@pytest.fixture(scope="module")
def ec_key(pki) -> ECKey:
    jwk = json.loads((pki / "tpp-demo.json").read_text())["private_jwk"]
    return ECKey.import_key(jwk)


@pytest.fixture(scope="module")
def waiting_consent(module_tpp) -> str:
    """A consent awaiting authorisation that no refused push changes."""
    return module_tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]


def _request_object(tpp: Tpp, key, alg: str, **claims) -> tuple[str, str, str]:
    """A signed request object for an account-access consent: (its JWT, state, code_verifier)."""
    verifier, state, now = generate_token(48), generate_token(16), int(time.time())
    body = {"iss": tpp.client_id, "aud": tpp.issuer, "client_id": tpp.client_id, "nbf": now, "exp": now + 300,
            "iat": now, "jti": secrets.token_hex(8), "response_type": "code", "redirect_uri": tpp.redirect_uri,
            "scope": "openid accounts", "state": state, "nonce": generate_token(16),
            "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256", **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": key.kid}, body, key, algorithms=[alg]), state, verifier


def _intent(consent_id: str) -> dict:
    return {"id_token": {"openbanking_intent_id": {"value": consent_id, "essential": True},
                         "acr": {"essential": True, "values": ["urn:openbanking:psd2:sca"]}}}


def _push(tpp: Tpp, request_object: str, **outer) -> httpx.Response:
    # tls_client_auth: Authlib's client adds client_id, as for any of its back-channel requests.
    return tpp.post_form("pushed_authorization_request_endpoint", {"request": request_object, **outer})


@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_a_signed_request_object_with_the_intent_claim_authorises_the_consent(gateway, pki, tpp, rsa_key, ec_key,
                                                                              alg):
    consent_id = tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    request_object, state, verifier = _request_object(tpp, ec_key if alg == "ES256" else rsa_key, alg,
                                                      claims=_intent(consent_id))
    # What is pushed beside the object is not used (RFC 9101 §6.3): this scope would be refused if it were.
    pushed = _push(tpp, request_object, scope="openid payments")
    assert pushed.status_code == 201, pushed.text
    browser = Browser(gateway.base, pki)
    try:
        answer = browser.authorize(tpp.client_id, pushed.json()["request_uri"])
    finally:
        browser.close()
    assert answer["state"] == state and answer["iss"] == tpp.issuer
    token = tpp.exchange(answer["code"], verifier)
    assert jwt.decode(token["id_token"], KeySet.import_key_set(_jwks(tpp))).claims["openbanking_intent_id"] == \
        consent_id
    assert tpp.get(ACCOUNTS, token).status_code == 200


def test_jarm_returns_the_code_and_state_in_a_response_jwt_signed_by_the_gateway(gateway, pki, tpp, ec_key):
    consent_id = tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    request_object, state, verifier = _request_object(tpp, ec_key, "ES256", claims=_intent(consent_id),
                                                      response_mode="jwt")
    pushed = _push(tpp, request_object)
    assert pushed.status_code == 201, pushed.text
    browser = Browser(gateway.base, pki)
    try:
        answer = browser.authorize(tpp.client_id, pushed.json()["request_uri"])
        assert set(answer) == {"response"}  # nothing in the clear beside it
        claims = jwt.decode(answer["response"], KeySet.import_key_set(_jwks(tpp))).claims
        assert (claims["iss"], claims["aud"], claims["state"]) == (tpp.issuer, tpp.client_id, state)
        assert time.time() < claims["exp"] <= time.time() + 600
        assert tpp.exchange(claims["code"], verifier)["token_type"].lower() == "bearer"

        # A refusal travels the same way: the customer denies.
        consent_id = tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
        request_object, state, _ = _request_object(tpp, ec_key, "ES256", claims=_intent(consent_id),
                                                   response_mode="jwt")
        denied = browser.authorize(tpp.client_id, _push(tpp, request_object).json()["request_uri"], decision="deny")
        error = jwt.decode(denied["response"], KeySet.import_key_set(_jwks(tpp))).claims
        assert (error["error"], error["state"], error["aud"]) == ("access_denied", state, tpp.client_id)
    finally:
        browser.close()


def _jwks(tpp: Tpp) -> dict:
    with httpx.Client(verify=client_context(tpp.pki / "ca.pem")) as client:
        return client.get(tpp.metadata["jwks_uri"]).json()


@pytest.mark.parametrize("case", ["unsigned", "unregistered key", "wrong aud", "wrong iss", "expired",
                                  "too long", "two intents", "request inside"])
def test_a_wrongly_made_request_object_is_refused_at_par(tpp, ec_key, waiting_consent, case):
    consent_id = waiting_consent
    now = int(time.time())
    claims = {"claims": _intent(consent_id)}
    key, alg = ec_key, "ES256"
    if case == "unregistered key":
        key = ECKey.generate_key("P-256", {"kid": ec_key.kid})
    elif case == "wrong aud":
        claims["aud"] = "https://another.example"
    elif case == "wrong iss":
        claims["iss"] = "someone-else"
    elif case == "expired":
        claims |= {"nbf": now - 600, "exp": now - 120}
    elif case == "too long":
        claims |= {"nbf": now, "exp": now + 7200}
    elif case == "two intents":
        claims["consent_id"] = "aac-another"
    elif case == "request inside":
        claims["request"] = "x"
    request_object, _, _ = _request_object(tpp, key, alg, **claims)
    if case == "unsigned":
        head, body, _ = request_object.split(".")
        request_object = f"{_b64({'alg': 'none'})}.{body}."
    refused = _push(tpp, request_object)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == ("invalid_request" if case == "two intents" else "invalid_request_object"), \
        refused.text


def test_discovery_advertises_request_objects_and_jarm(tpp):
    metadata = tpp.metadata
    assert metadata["request_parameter_supported"] is True and metadata["claims_parameter_supported"] is True
    assert set(metadata["request_object_signing_alg_values_supported"]) == {"PS256", "ES256"}
    assert {"jwt", "query.jwt"} <= set(metadata["response_modes_supported"])
    assert metadata["authorization_signing_alg_values_supported"] == ["ES256"]


def _b64(header: dict) -> str:
    return b64url(json.dumps(header).encode())
