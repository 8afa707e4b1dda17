"""The OpenID Connect UserInfo endpoint through `obgw serve`: a consent's token learns the customer's pseudonymous
`sub` (the id_token's) and its intent id, and nothing more; over another certificate, without `openid`, after the
consent is revoked, or without a token, it learns nothing (RFC 6750 errors)."""
from __future__ import annotations

import jwt
import pytest
from support.tpp import Browser, Tpp

pytestmark = pytest.mark.e2e


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
    response, pushed = tpp.push(consent_id, scope="accounts", nonce=None)
    assert response.status_code == 201, response.text
    browser = Browser(gateway.base, pki)
    try:
        redirect = browser.authorize(tpp.client_id, pushed.request_uri)
    finally:
        browser.close()
    token = tpp.exchange(redirect["code"], pushed.code_verifier)
    answer = _userinfo(tpp, token["access_token"])
    assert answer.status_code == 403 and 'error="insufficient_scope"' in answer.headers["www-authenticate"]
