"""Dynamic Client Registration (RFC 7591) with a directory-signed software statement, and its management (RFC 7592)."""
from __future__ import annotations

import json
import secrets
import shutil
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from support.gateway import bank_gateway, client_context
from support.tpp import ACCOUNTS, Tpp

from gateway import pki as pkimod

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank, register=False)
    yield gw
    assert gw.stop() == 0


class Newcomer(NamedTuple):
    directory: Path          # certs/dev-style: ca.pem, acme.pem, acme.key (the Tpp helper reads them as "acme")
    signing: dict            # its private signing JWK
    software_id: str         # its certificate's CN, new for every test (a deleted client's software stays refused)


@pytest.fixture
def newcomer(tmp_path, pki) -> Newcomer:
    """A TPP the gateway has never seen: a certificate from the trusted CA and its own signing key."""
    software_id = "acme-" + secrets.token_hex(4)
    shutil.copy(pki / "ca.pem", tmp_path / "ca.pem")
    pkimod.issue_client_cert(pkimod.load_ca(pki), software_id).write(tmp_path / "acme.pem", tmp_path / "acme.key")
    return Newcomer(tmp_path, pkimod.make_signing_jwk(), software_id)


def _statement(pki, newcomer: Newcomer, *, key=None, kid=None, **claims) -> str:
    """A software statement for the newcomer, signed by the dev directory (or `key`/`kid`), minted now; a claim
    given as None is left out."""
    directory = json.loads((pki / "directory.json").read_text())
    private = key or ECAlgorithm.from_jwk(json.dumps(directory["private_jwk"]))
    body = {"iss": directory["iss"], "iat": int(time.time()), "jti": str(uuid.uuid4()),
            "software_id": newcomer.software_id, "software_client_name": "Acme Budgeting", "software_roles": ["AISP"],
            "software_redirect_uris": ["https://acme.example/cb"],
            "software_jwks": {"keys": [pkimod.public_jwk(newcomer.signing)]}, **claims}
    return jwt.encode({name: value for name, value in body.items() if value is not None}, private, "ES256",
                      headers={"kid": kid or directory["private_jwk"]["kid"]})


def _register(gateway, directory, body: dict) -> httpx.Response:
    """POST /oauth2/register over mutual TLS with acme's certificate."""
    with httpx.Client(verify=client_context(directory / "ca.pem", directory / "acme.pem", directory / "acme.key"),
                      timeout=15) as http:
        return http.post(gateway.base + "/oauth2/register", json=body)


def test_a_directory_signed_statement_registers_a_client_that_can_then_authenticate(gateway, pki, newcomer):
    directory, signing, software_id = newcomer
    response = _register(gateway, directory, {"software_statement": _statement(pki, newcomer),
                                              "token_endpoint_auth_method": "private_key_jwt"})
    assert response.status_code == 201, response.text
    client = response.json()
    assert client["client_name"] == "Acme Budgeting" and client["redirect_uris"] == ["https://acme.example/cb"]
    assert client["token_endpoint_auth_method"] == "private_key_jwt" and "client_secret" not in client
    assert client["tls_client_auth_subject_dn"] == f"O=obgw demo TPP,CN={software_id}"
    (directory / "acme.json").write_text(json.dumps({
        "client_id": client["client_id"], "redirect_uri": "https://acme.example/cb", "private_jwk": signing}))
    tpp = Tpp(gateway.base, directory, "acme", auth="private_key_jwt")
    token = tpp.client_credentials("accounts")
    assert token["token_type"] == "Bearer"
    # RFC 7592: the client reads its registration with its own token over its own certificate, then deletes it.
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    uri = client["registration_client_uri"]
    assert tpp.http.get(uri, headers=auth).json()["client_id"] == client["client_id"]
    assert tpp.http.delete(uri, headers=auth).status_code == 204
    refused = tpp.oauth.request("POST", tpp.metadata["token_endpoint"], withhold_token=True,
                                data={"grant_type": "client_credentials", "scope": "accounts"},
                                auth=tpp.oauth.client_auth("private_key_jwt"))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    tpp.close()


def test_the_registration_of_another_client_is_not_readable(gateway, pki, newcomer):
    created = _register(gateway, newcomer.directory, {"software_statement": _statement(pki, newcomer),
                                             "token_endpoint_auth_method": "tls_client_auth"}).json()
    gateway.register_tpps(pki)
    other = Tpp(gateway.base, pki, "tpp-other")
    token = other.client_credentials("accounts")
    answer = other.http.get(created["registration_client_uri"],
                            headers={"Authorization": f"Bearer {token['access_token']}"})
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    other.close()


def test_a_registration_read_names_only_the_metadata_the_client_has(gateway, pki):
    # schemathesis found `"software_id": null` for a client added by `obgw clients add` (no software statement).
    gateway.register_tpps(pki, names=("tpp-demo",))
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    token = tpp.client_credentials("accounts")
    answer = tpp.http.get(gateway.base + "/oauth2/register/tpp-demo",
                          headers={"Authorization": f"Bearer {token['access_token']}"})
    tpp.close()
    assert answer.status_code == 200, answer.text
    client = answer.json()
    assert client["client_id"] == "tpp-demo" and "software_id" not in client
    assert None not in client.values()


def _unsigned() -> str:
    return jwt.encode({"iss": "x", "iat": int(time.time()), "software_id": "acme-app"}, None, algorithm="none")


@pytest.mark.parametrize("case, error", [
    ("missing", "invalid_software_statement"),
    ("unsigned", "invalid_software_statement"),
    ("unknown directory key", "unapproved_software_statement"),
    ("tampered", "invalid_software_statement"),
    ("redirect not in the statement", "invalid_client_metadata"),
    ("client secret method", "invalid_client_metadata"),
    ("another TPP's software", "invalid_software_statement"),
    ("algorithm the key does not use", "invalid_software_statement"),
    ("statement without a jti", "invalid_software_statement"),
    ("statement older than a day", "invalid_software_statement"),
    ("statement past its exp", "invalid_software_statement"),
    ("keys beside the statement", "invalid_client_metadata"),
])
def test_a_bad_registration_is_refused_with_the_rfc_error_and_registers_nothing(gateway, pki, newcomer, case, error):
    directory = newcomer.directory
    body = {"software_statement": _statement(pki, newcomer), "token_endpoint_auth_method": "private_key_jwt"}
    if case == "missing":
        del body["software_statement"]
    elif case == "unsigned":
        body["software_statement"] = _unsigned()
    elif case == "unknown directory key":
        body["software_statement"] = _statement(pki, newcomer, key=ec.generate_private_key(ec.SECP256R1()),
                                                kid="someone-elses-directory")
    elif case == "tampered":
        head, claims, sig = body["software_statement"].split(".")
        forged = jwt.utils.base64url_encode(json.dumps({**json.loads(jwt.utils.base64url_decode(claims)),
                                                        "software_roles": ["AISP", "PISP"]}).encode()).decode()
        body["software_statement"] = ".".join((head, forged, sig))
    elif case == "redirect not in the statement":
        body["redirect_uris"] = ["https://evil.example/cb"]
    elif case == "client secret method":
        body["token_endpoint_auth_method"] = "client_secret_basic"
    elif case == "another TPP's software":
        body["software_statement"] = _statement(pki, newcomer, software_id="tpp-demo")
    elif case == "algorithm the key does not use":
        head, claims, sig = body["software_statement"].split(".")
        header = {**json.loads(jwt.utils.base64url_decode(head)), "alg": "PS256"}
        body["software_statement"] = ".".join((jwt.utils.base64url_encode(json.dumps(header).encode()).decode(),
                                               claims, sig))
    elif case == "statement without a jti":
        body["software_statement"] = _statement(pki, newcomer, jti=None)
    elif case == "statement older than a day":
        body["software_statement"] = _statement(pki, newcomer, iat=int(time.time()) - 86_400 - 120)
    elif case == "statement past its exp":
        body["software_statement"] = _statement(pki, newcomer, iat=int(time.time()) - 600,
                                                exp=int(time.time()) - 120)
    elif case == "keys beside the statement":  # the keys that authenticate the client come from the directory only
        body["jwks"] = {"keys": [pkimod.public_jwk(pkimod.make_signing_jwk())]}
    before = gateway.cli("clients", "list").stdout
    response = _register(gateway, directory, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert gateway.cli("clients", "list").stdout == before
    [record] = [r for r in gateway.audit() if r["interaction_id"] == response.headers["x-fapi-interaction-id"]]
    assert record["reason"] == f"oauth.{error}" and record["decision"] == "refuse"


def test_a_statement_registers_once(gateway, pki, newcomer):
    body = {"software_statement": _statement(pki, newcomer), "token_endpoint_auth_method": "tls_client_auth"}
    assert _register(gateway, newcomer.directory, body).status_code == 201
    before = gateway.cli("clients", "list").stdout
    again = _register(gateway, newcomer.directory, body)
    assert again.status_code == 400 and again.json()["error"] == "invalid_software_statement", again.text
    assert "used already" in again.json()["error_description"]
    assert gateway.cli("clients", "list").stdout == before


def _bearer(gateway, newcomer: Newcomer, client_id: str) -> dict:
    """A client-credentials token of the newcomer's registered client (tls_client_auth), as an auth header."""
    (newcomer.directory / "acme.json").write_text(json.dumps({
        "client_id": client_id, "redirect_uri": "https://acme.example/cb", "private_jwk": newcomer.signing}))
    tpp = Tpp(gateway.base, newcomer.directory, "acme")
    try:
        return {"Authorization": f"Bearer {tpp.client_credentials('accounts')['access_token']}"}
    finally:
        tpp.close()


@pytest.mark.parametrize("how", ["disabled by the operator", "deleted by itself (RFC 7592)"])
def test_a_stopped_tpp_cannot_register_again_with_a_new_statement_and_its_certificate(gateway, pki, newcomer, how):
    first = _register(gateway, newcomer.directory, {"software_statement": _statement(pki, newcomer),
                                                    "token_endpoint_auth_method": "tls_client_auth"})
    assert first.status_code == 201, first.text
    client_id = first.json()["client_id"]
    if how.startswith("disabled"):
        assert gateway.cli("clients", "disable", client_id).returncode == 0
    else:
        with httpx.Client(verify=client_context(newcomer.directory / "ca.pem", newcomer.directory / "acme.pem",
                                                newcomer.directory / "acme.key"), timeout=15) as http:
            deleted = http.delete(first.json()["registration_client_uri"],
                                  headers=_bearer(gateway, newcomer, client_id))
        assert deleted.status_code == 204, deleted.text
    before = gateway.cli("clients", "list").stdout
    fresh = {"software_statement": _statement(pki, newcomer), "token_endpoint_auth_method": "tls_client_auth"}
    refused = _register(gateway, newcomer.directory, fresh)
    assert refused.status_code == 400 and refused.json()["error"] == "unapproved_software_statement", refused.text
    assert gateway.cli("clients", "list").stdout == before
    [record] = [r for r in gateway.audit() if r["interaction_id"] == refused.headers["x-fapi-interaction-id"]]
    assert record["reason"] == "oauth.unapproved_software_statement" and record["decision"] == "refuse"
    # The operator may let it back: then the same request registers.
    assert gateway.cli("clients", "enable", client_id).returncode == 0
    assert _register(gateway, newcomer.directory, fresh).status_code == 201


def test_a_renewed_certificate_keeps_the_tpps_consents(gateway, pki, tmp_path):
    """RFC 8705 §4: a refresh token is bound to the client, so the TPP's consent carries on with its new certificate;
    each access token is bound to the certificate presented when it was issued."""
    gateway.register_tpps(pki, names=("tpp-demo",))
    old = Tpp(gateway.base, pki, "tpp-demo")
    token = old.consent_token(["ReadAccountsBasic"])
    renewal = tmp_path / "renewal"
    renewal.mkdir()
    for name in ("ca.pem", "tpp-demo.json"):
        shutil.copy(pki / name, renewal / name)
    renewed = pkimod.issue_client_cert(pkimod.load_ca(pki), "tpp-demo")
    renewed.write(renewal / "tpp-demo.pem", renewal / "tpp-demo.key")
    new = Tpp(gateway.base, renewal, "tpp-demo")
    try:
        # Before the operator adds it, the new certificate is not the client's.
        refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
        early = new.post_form("token_endpoint", refresh)
        assert early.status_code == 401 and early.json()["error"] == "invalid_client", early.text
        added = gateway.cli("clients", "add-cert", "tpp-demo", str(renewal / "tpp-demo.pem"))
        assert added.returncode == 0, added.stderr
        refreshed = new.post_form("token_endpoint", refresh)
        assert refreshed.status_code == 200, refreshed.text
        claims = jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})
        assert claims["cnf"]["x5t#S256"] == pkimod.thumbprint_sha256(renewed.cert)
        assert new.get(ACCOUNTS, refreshed.json()).status_code == 200
        assert old.get(ACCOUNTS, refreshed.json()).status_code == 401   # bound to the new certificate only
        assert old.get(ACCOUNTS, token).status_code == 200              # the old token stays bound to the old one
        assert new.get(ACCOUNTS, token).status_code == 401
    finally:
        new.close()
        old.close()
