"""The whole TPP flow with Authlib's client over real mutual TLS, against `obgw serve` and the sandbox bank."""
from __future__ import annotations

import jwt
import pytest
from cryptography import x509
from support.rotation import until_every_worker_takes_the_new_key
from support.tpp import ACCOUNTS, Tpp

from gateway import pki as pkimod

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("auth", ["tls_client_auth", "private_key_jwt"])
def test_the_whole_flow_gives_a_token_that_reads_the_consented_accounts(gateway, pki, auth):
    tpp = Tpp(gateway.base, pki, "tpp-demo", auth=auth)
    token = tpp.consent_token(["ReadAccountsBasic"])
    response = tpp.get(ACCOUNTS, token)
    assert response.status_code == 200, response.text
    assert {a["AccountId"] for a in response.json()["Data"]["Account"]} >= {"acc-alice-current"}
    tpp.close()


def test_discovery_names_every_endpoint_and_the_fapi_choices(gateway, pki):
    tpp = Tpp(gateway.base, pki)
    m = tpp.metadata
    tpp.close()
    assert m["issuer"] == gateway.base
    for name in ("authorization_endpoint", "token_endpoint", "pushed_authorization_request_endpoint",
                 "revocation_endpoint", "introspection_endpoint", "registration_endpoint", "jwks_uri"):
        assert m[name].startswith(gateway.base + "/")
    assert set(m["token_endpoint_auth_methods_supported"]) == {"tls_client_auth", "private_key_jwt"}
    assert m["code_challenge_methods_supported"] == ["S256"]
    assert m["require_pushed_authorization_requests"] is True
    assert m["tls_client_certificate_bound_access_tokens"] is True
    assert m["authorization_response_iss_parameter_supported"] is True
    assert {"openid", "accounts", "payments"} <= set(m["scopes_supported"])
    assert "code" in m["response_types_supported"] and m["subject_types_supported"]


def test_the_tokens_are_bound_signed_jwts_and_the_id_token_names_the_consent(gateway, pki):
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    token = tpp.consent_token(["ReadAccountsBasic"])
    keys = jwt.PyJWKClient(tpp.metadata["jwks_uri"], ssl_context=tpp.context)
    access = jwt.decode(token["access_token"], keys.get_signing_key_from_jwt(token["access_token"]).key,
                        algorithms=["ES256"], audience=gateway.base + "/open-banking/v3.1")
    assert jwt.get_unverified_header(token["access_token"])["typ"] == "at+jwt"
    assert access["client_id"] == "tpp-demo" and access["openbanking_intent_id"] == token["consent_id"]
    certificate = x509.load_pem_x509_certificate((pki / "tpp-demo.pem").read_bytes())
    assert access["cnf"]["x5t#S256"] == pkimod.thumbprint_sha256(certificate)
    assert access["sub"].startswith("cust-") and "alice" not in access["sub"]  # a pseudonym, not the customer id
    alg = tpp.metadata["id_token_signing_alg_values_supported"]
    id_token = jwt.decode(token["id_token"], keys.get_signing_key_from_jwt(token["id_token"]).key, algorithms=alg,
                          audience="tpp-demo")
    assert id_token["openbanking_intent_id"] == token["consent_id"] and id_token["sub"] == access["sub"]
    # The refresh token gives a new access token for the same consent, still bound to the certificate.
    refreshed = tpp.oauth.refresh_token(tpp.metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert tpp.get(ACCOUNTS, refreshed).status_code == 200
    tpp.close()


def test_a_key_rotation_keeps_earlier_tokens_valid_on_every_worker(gateway, pki):
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    before = tpp.consent_token(["ReadAccountsBasic"])
    done = gateway.cli("keys", "rotate")
    assert done.returncode == 0, done.stderr
    until_every_worker_takes_the_new_key(gateway, tpp)
    after = tpp.consent_token(["ReadAccountsBasic"])
    kid = jwt.get_unverified_header
    assert kid(after["access_token"])["kid"] != kid(before["access_token"])["kid"]
    published = {k["kid"] for k in tpp.http.get(tpp.metadata["jwks_uri"]).json()["keys"]}
    assert {kid(before["access_token"])["kid"], kid(after["access_token"])["kid"]} <= published
    # Several calls each, so both workers meet both keys.
    assert {tpp.get(ACCOUNTS, t).status_code for t in (before, after) for _ in range(6)} == {200}
    tpp.close()


def test_a_disabled_client_is_refused_at_once_and_can_be_enabled_again(gateway, pki):
    tpp = Tpp(gateway.base, pki, "tpp-other")
    token = tpp.consent_token(["ReadAccountsBasic"])
    assert tpp.get(ACCOUNTS, token).status_code == 200
    assert gateway.cli("clients", "disable", "tpp-other").returncode == 0
    try:
        assert {tpp.get(ACCOUNTS, token).status_code for _ in range(4)} == {401}  # both workers, next call
        refused = tpp.oauth.request("POST", tpp.metadata["token_endpoint"], withhold_token=True,
                                    data={"grant_type": "client_credentials", "scope": "accounts"},
                                    auth=tpp.oauth.client_auth("tls_client_auth"))
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    finally:
        assert gateway.cli("clients", "enable", "tpp-other").returncode == 0
    assert tpp.get(ACCOUNTS, token).status_code == 200
    tpp.close()
