"""The registered client as Authlib sees it: scopes by role, exact redirect URIs, auth methods, its stored document."""
from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.oauth.models import Client

AISP = Client(client_id="tpp-demo", client_name="Demo TPP", roles=("AISP",),
              redirect_uris=("https://tpp.test/cb", "https://tpp.test/other"),
              auth_methods=("tls_client_auth",), cert_thumbprints=("thumb",), subject_dn=None, issuer_dn=None)


@pytest.mark.parametrize("roles, scopes", [
    (("AISP",), {"openid", "accounts"}),
    (("PISP",), {"openid", "payments"}),
    (("AISP", "PISP"), {"openid", "accounts", "payments"}),
    (("CBPII",), {"openid", "fundsconfirmations"}),
])
def test_a_clients_scopes_follow_its_roles(roles, scopes):
    assert replace(AISP, roles=roles).scopes == scopes


@pytest.mark.parametrize("asked, allowed", [
    ("openid accounts", "openid accounts"),
    ("accounts", "accounts"),
    ("accounts openid", "accounts openid"),
    ("openid accounts payments", None),
    ("payments", None),
    ("", None),
    (None, None),
])
def test_the_allowed_scope_is_the_request_only_when_every_scope_is_the_clients(asked, allowed):
    assert AISP.get_allowed_scope(asked) == allowed


@pytest.mark.parametrize("uri, registered", [
    ("https://tpp.test/cb", True),
    ("https://tpp.test/other", True),
    ("https://tpp.test/cb/", False),
    ("https://tpp.test/cb?x=1", False),
    ("https://TPP.test/cb", False),
    ("http://tpp.test/cb", False),
    ("https://tpp.test/c", False),
])
def test_a_redirect_uri_must_match_a_registered_one_exactly(uri, registered):
    assert AISP.check_redirect_uri(uri) is registered


def test_the_endpoint_auth_method_must_be_registered():
    assert AISP.check_endpoint_auth_method("tls_client_auth", "token")
    assert not AISP.check_endpoint_auth_method("private_key_jwt", "token")
    assert not AISP.check_endpoint_auth_method("client_secret_basic", "token")


@pytest.mark.parametrize("status", ["disabled", "deleted"])
def test_a_client_that_is_not_active_may_not_authenticate_or_use_any_grant(status):
    inactive = replace(AISP, status=status)
    assert not inactive.active
    assert not inactive.check_endpoint_auth_method("tls_client_auth", "token")
    assert not inactive.check_grant_type("client_credentials")


def test_an_active_client_may_use_the_three_fapi_grant_types_only():
    assert all(AISP.check_grant_type(g) for g in ("authorization_code", "refresh_token", "client_credentials"))
    assert not AISP.check_grant_type("password")
    assert not AISP.check_grant_type("implicit")


def test_only_the_code_response_type_and_no_secret_and_no_default_redirect():
    assert AISP.check_response_type("code")
    assert not AISP.check_response_type("token")
    assert not AISP.check_response_type("code id_token")
    assert AISP.check_client_secret("") is False
    assert AISP.get_default_redirect_uri() is None
    assert AISP.get_client_id() == "tpp-demo"


def test_a_client_survives_its_document_round_trip():
    client = Client(client_id="tpp-dcr", client_name="DCR TPP", roles=("AISP", "PISP"),
                    redirect_uris=("https://tpp.test/cb",), auth_methods=("private_key_jwt", "tls_client_auth"),
                    cert_thumbprints=(), subject_dn="CN=tpp-dcr,O=obgw demo TPP", issuer_dn="CN=obgw dev CA",
                    jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k1"}]},
                    status="disabled", software_id="sw-1", created_at=1_750_000_000, origin="dcr")
    assert Client.from_document(client.to_document()) == client
    assert Client.from_document(AISP.to_document()) == AISP


def test_a_minimal_document_gets_the_defaults():
    client = Client.from_document({"client_id": "c", "client_name": "C", "roles": ["PISP"],
                                   "redirect_uris": ["https://c.test/cb"], "auth_methods": ["tls_client_auth"]})
    assert (client.cert_thumbprints, client.subject_dn, client.issuer_dn) == ((), None, None)
    assert (client.jwks, client.status, client.software_id, client.created_at, client.origin) == (
        {"keys": []}, "active", None, 0, "cli")
    assert client.roles == ("PISP",)


def test_a_document_from_before_several_certificates_is_read_with_its_one_certificate():
    legacy = AISP.to_document()
    del legacy["cert_thumbprints"]
    legacy["cert_thumbprint"] = "thumb"
    assert Client.from_document(legacy) == AISP


def test_any_registered_certificate_matches_and_no_other():
    renewed = replace(AISP, cert_thumbprints=("old", "new"))
    certificate = type("Certificate", (), {"subject": "CN=tpp-demo", "issuer": "CN=CA"})
    for thumbprint, matches in (("old", True), ("new", True), ("another", False)):
        certificate.thumbprint = thumbprint
        assert renewed.matches_certificate(certificate) is matches


@pytest.mark.parametrize("software_id, subject_dn, software", [
    ("sw-1", "CN=tpp-dcr,O=obgw demo TPP", "sw-1"),
    (None, "O=obgw demo TPP,CN=tpp-demo", "tpp-demo"),
    (None, "O=no common name", None),
    (None, None, None),
])
def test_the_software_a_client_is_comes_from_its_software_id_else_its_certificate_cn(software_id, subject_dn,
                                                                                      software):
    assert replace(AISP, software_id=software_id, subject_dn=subject_dn).software == software
