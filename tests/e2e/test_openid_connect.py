"""OpenID Connect and the authorization server's metadata through `obgw serve`: discovery as RFC 8414 and OIDC
Discovery 1.0 define it; the UserInfo endpoint (a consent's token learns the customer's pseudonymous `sub` - the
id_token's - and its intent id, and nothing more; over another certificate, without `openid`, after the consent is
revoked, or without a token, nothing: RFC 6750 errors); signed introspection (RFC 9701)."""
from __future__ import annotations

import time

import httpx
import jwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from support.gateway import client_context
from support.tpp import Browser, Tpp, redirect_params

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def _unlimited(gateway):
    """Many consents in a few seconds: the standard tier's consent-creation limit is not what is tested here."""
    assert gateway.cli("clients", "set-tier", "tpp-demo", "unlimited").returncode == 0


def _userinfo(tpp: Tpp, token: str | None, method: str = "GET"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return tpp.http.request(method, tpp.metadata["userinfo_endpoint"], headers=headers)


def test_userinfo_names_the_customer_by_the_id_tokens_sub_and_the_consent(tpp):
    token = tpp.consent_token(["ReadAccountsBasic"])
    id_claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    for method in ("GET", "POST"):
        answer = _userinfo(tpp, token["access_token"], method)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"sub": id_claims["sub"], "openbanking_intent_id": token["consent_id"]}
        assert answer.headers["cache-control"] == "no-store"
    assert "customer" not in answer.text and "alice" not in answer.text


def test_userinfo_refuses_what_is_not_this_consents_live_token_over_its_certificate(gateway, pki, tpp):
    token = tpp.consent_token(["ReadAccountsBasic"])
    thief = Tpp(gateway.base, pki, "tpp-demo", cert_of="tpp-other")
    try:
        stolen = _userinfo(thief, token["access_token"])
    finally:
        thief.close()
    assert stolen.status_code == 401 and 'error="invalid_token"' in stolen.headers["www-authenticate"]
    missing = _userinfo(tpp, None)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    unbound = _userinfo(tpp, tpp.client_credentials("accounts")["access_token"])  # no consent, no openid
    assert unbound.status_code == 401
    revoked = gateway.cli("consents", "revoke", token["consent_id"])
    assert revoked.returncode == 0, revoked.stderr
    after = _userinfo(tpp, token["access_token"])
    assert after.status_code == 401 and after.json()["error"] == "invalid_token"


def test_discovery_names_the_userinfo_endpoint(tpp):
    assert tpp.metadata["userinfo_endpoint"] == tpp.issuer + "/oauth2/userinfo"


def test_a_token_granted_without_openid_is_refused_for_want_of_scope(gateway, pki, tpp):
    consent_id = tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    redirect, pushed = tpp.approve(consent_id, scope="accounts", nonce=None)
    token = tpp.exchange(redirect["code"], pushed.code_verifier)
    answer = _userinfo(tpp, token["access_token"])
    assert answer.status_code == 403 and 'error="insufficient_scope"' in answer.headers["www-authenticate"]


# RFC 8414 §2 and OIDC Discovery 1.0 §3: what each member is, and which are required.
_URLS = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint",
         "pushed_authorization_request_endpoint", "revocation_endpoint", "introspection_endpoint",
         "userinfo_endpoint")
_OIDC_REQUIRED = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "response_types_supported",
                  "subject_types_supported", "id_token_signing_alg_values_supported")


def test_discovery_is_rfc_8414_and_oidc_discovery_metadata(gateway, tpp):
    with httpx.Client(verify=tpp.context) as http:
        both = [http.get(gateway.base + path).json()
                for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")]
    metadata = both[0]
    assert both[0] == both[1]
    assert all(name in metadata for name in _OIDC_REQUIRED)
    assert metadata["issuer"] == gateway.base and "?" not in metadata["issuer"] and "#" not in metadata["issuer"]
    for name in _URLS:
        assert metadata[name].startswith("https://"), name
    for name, value in metadata.items():
        if name.endswith("_supported") and not isinstance(value, bool):
            assert isinstance(value, list) and all(isinstance(v, str) for v in value) and value, name
        if name.endswith(("_parameter_supported", "_requests", "bound_access_tokens")):
            assert isinstance(value, bool), name
    assert "none" not in metadata["id_token_signing_alg_values_supported"]
    for name in ("request_object_signing_alg_values_supported", "dpop_signing_alg_values_supported",
                 "authorization_signing_alg_values_supported", "introspection_signing_alg_values_supported"):
        assert "none" not in metadata[name] and metadata[name], name


def test_introspection_answers_as_a_signed_jwt_when_asked(tpp):
    token = tpp.consent_token(["ReadAccountsBasic"])
    endpoint = tpp.metadata["introspection_endpoint"]
    with httpx.Client(verify=client_context(tpp.pki / "ca.pem")) as public:
        keys = KeySet.import_key_set(public.get(tpp.metadata["jwks_uri"]).json())
    for value, active in ((token["access_token"], True), ("not-a-token", False)):
        answer = tpp.oauth.request("POST", endpoint, data={"token": value}, withhold_token=True,
                                   headers={"Accept": "application/token-introspection+jwt"},
                                   auth=tpp.oauth.client_auth(tpp.auth))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/token-introspection+jwt"
        signed = jose_jwt.decode(answer.text, keys)
        assert signed.header["typ"] == "token-introspection+jwt"
        claims = signed.claims
        assert (claims["iss"], claims["aud"]) == (tpp.issuer, tpp.client_id)
        assert claims["token_introspection"]["active"] is active
    plain = tpp.post_form("introspection_endpoint", {"token": token["access_token"]})
    assert plain.headers["content-type"].startswith("application/json") and plain.json()["active"] is True


def test_the_authorization_endpoint_takes_post_as_oidc_requires(gateway, pki, tpp):
    consent_id = tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    response, pushed = tpp.push(consent_id)
    assert response.status_code == 201, response.text
    browser = Browser(gateway.base, pki)
    try:
        page = browser.http.post(tpp.metadata["authorization_endpoint"],
                                 data={"client_id": tpp.client_id, "request_uri": pushed.request_uri})
    finally:
        browser.close()
    assert page.status_code == 200 and 'name="password"' in page.text


def test_prompt_none_is_answered_login_required_to_the_client(gateway, pki, tpp):
    consent_id = tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    response, pushed = tpp.push(consent_id, prompt="none")
    assert response.status_code == 201, response.text
    browser = Browser(gateway.base, pki)
    try:
        answer = browser.open(tpp.client_id, pushed.request_uri)
    finally:
        browser.close()
    assert answer.status_code in (302, 303)
    got = {k: v for k, v in redirect_params(answer).items() if k != "error_description"}
    assert got == {"error": "login_required", "state": pushed.state, "iss": tpp.issuer}


@pytest.mark.parametrize("parameter, value, accepted", [
    ("prompt", "login", True), ("prompt", "none login", False), ("prompt", "sometimes", False),
    ("max_age", "0", True), ("max_age", "an hour", False),
    ("acr_values", "urn:openbanking:psd2:sca", True),
])
def test_openid_parameters_are_checked_at_par(tpp, parameter, value, accepted):
    consent_id = tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    response, _ = tpp.push(consent_id, **{parameter: value})
    assert (response.status_code == 201) is accepted, response.text
    if not accepted:
        assert response.json()["error"] == "invalid_request"


def test_a_fresh_login_meets_max_age_and_acr_values(gateway, pki, tpp):
    before = int(time.time())
    consent_id = tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    redirect, pushed = tpp.approve(consent_id, max_age="0", acr_values="urn:openbanking:psd2:sca")
    claims = jwt.decode(tpp.exchange(redirect["code"], pushed.code_verifier)["id_token"],
                        options={"verify_signature": False})
    assert claims["acr"] == "urn:openbanking:psd2:sca" and claims["auth_time"] >= before - 1
