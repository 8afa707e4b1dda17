"""Dynamic Client Registration (RFC 7591) with a directory-signed software statement, and its management (RFC 7592)."""
from __future__ import annotations

import json
import shutil
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from support.gateway import bank_gateway, client_context
from support.tpp import Tpp

from gateway import pki as pkimod

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank, register=False)
    yield gw
    assert gw.stop() == 0


@pytest.fixture
def newcomer(tmp_path, pki):
    """A TPP the gateway has never seen: a certificate from the trusted CA and its own signing key, in a
    certs/dev-style directory (tmp_path) that the Tpp helper reads."""
    shutil.copy(pki / "ca.pem", tmp_path / "ca.pem")
    pkimod.issue_client_cert(pkimod.load_ca(pki), "acme").write(tmp_path / "acme.pem", tmp_path / "acme.key")
    signing = pkimod.make_signing_jwk()
    return tmp_path, signing


def _statement(pki, signing_jwk, *, key=None, kid=None, **claims) -> str:
    directory = json.loads((pki / "directory.json").read_text())
    private = key or ECAlgorithm.from_jwk(json.dumps(directory["private_jwk"]))
    body = {"iss": directory["iss"], "iat": int(time.time()), "jti": str(uuid.uuid4()), "software_id": "acme",
            "software_client_name": "Acme Budgeting", "software_roles": ["AISP"],
            "software_redirect_uris": ["https://acme.example/cb"],
            "software_jwks": {"keys": [pkimod.public_jwk(signing_jwk)]}, **claims}
    return jwt.encode(body, private, "ES256", headers={"kid": kid or directory["private_jwk"]["kid"]})


def _register(gateway, directory, body: dict) -> httpx.Response:
    """POST /oauth2/register over mutual TLS with acme's certificate."""
    with httpx.Client(verify=client_context(directory / "ca.pem", directory / "acme.pem", directory / "acme.key"),
                      timeout=15) as http:
        return http.post(gateway.base + "/oauth2/register", json=body)


def test_a_directory_signed_statement_registers_a_client_that_can_then_authenticate(gateway, pki, newcomer):
    directory, signing = newcomer
    response = _register(gateway, directory, {"software_statement": _statement(pki, signing),
                                              "token_endpoint_auth_method": "private_key_jwt"})
    assert response.status_code == 201, response.text
    client = response.json()
    assert client["client_name"] == "Acme Budgeting" and client["redirect_uris"] == ["https://acme.example/cb"]
    assert client["token_endpoint_auth_method"] == "private_key_jwt" and "client_secret" not in client
    assert client["tls_client_auth_subject_dn"] == "O=obgw demo TPP,CN=acme"
    (directory / "acme.json").write_text(json.dumps({"client_id": client["client_id"],
                                                     "redirect_uri": "https://acme.example/cb", "private_jwk": signing}))
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
    directory, signing = newcomer
    created = _register(gateway, directory, {"software_statement": _statement(pki, signing),
                                             "token_endpoint_auth_method": "tls_client_auth"}).json()
    gateway.register_tpps(pki)
    other = Tpp(gateway.base, pki, "tpp-other")
    token = other.client_credentials("accounts")
    answer = other.http.get(created["registration_client_uri"], headers={"Authorization": f"Bearer {token['access_token']}"})
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
])
def test_a_bad_registration_is_refused_with_the_rfc_error_and_registers_nothing(gateway, pki, newcomer, case, error):
    directory, signing = newcomer
    body = {"software_statement": _statement(pki, signing), "token_endpoint_auth_method": "private_key_jwt"}
    if case == "missing":
        del body["software_statement"]
    elif case == "unsigned":
        body["software_statement"] = _unsigned()
    elif case == "unknown directory key":
        body["software_statement"] = _statement(pki, signing, key=ec.generate_private_key(ec.SECP256R1()),
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
        body["software_statement"] = _statement(pki, signing, software_id="tpp-demo")
    elif case == "algorithm the key does not use":
        head, claims, sig = body["software_statement"].split(".")
        header = {**json.loads(jwt.utils.base64url_decode(head)), "alg": "PS256"}
        body["software_statement"] = ".".join((jwt.utils.base64url_encode(json.dumps(header).encode()).decode(),
                                               claims, sig))
    before = gateway.cli("clients", "list").stdout
    response = _register(gateway, directory, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert gateway.cli("clients", "list").stdout == before
    [record] = [r for r in gateway.audit() if r["interaction_id"] == response.headers["x-fapi-interaction-id"]]
    assert record["reason"] == f"oauth.{error}" and record["decision"] == "refuse"
