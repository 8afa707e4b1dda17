"""The gateway's own OpenAPI document (`GET /openapi.json`): valid OpenAPI 3.0, every TPP-facing route in it, and
schemathesis against `obgw serve --workers 2` in front of the sandbox bank, over mutual TLS with tpp-demo's
certificate and real tokens, real path values for half the cases and signed bodies for half the signed ones, so
generated calls reach deep into the pipeline. Every answer must be a documented one (status, content type,
headers, body schema), and none a 5xx. Seeded and derandomized: CI sees the same cases on every run."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import httpx
import pytest
import requests
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR
from support.gateway import bank_gateway, client_context
from support.processes import ROOT
from support.tpp import (
    ALL_ACCOUNT_PERMISSIONS,
    CUSTOMER_PRESENT,
    Tpp,
    domestic_initiation,
)

from gateway.app import CONSENT_API
from gateway.oauth.discovery import PATHS
from gateway.openapi_document import build_document
from gateway.payments.jws import sign_detached
from gateway.policy import load_policy

MAX_EXAMPLES = 25  # per operation; with the coverage phase ~3000 calls, ~20 s on two shared cores
SEED = 20261201    # with derandomize: the same cases on every run
ISSUER = "https://127.0.0.1:8443"
# What the gateway's document adds to the routes of routes.yaml and the consent API (app.py's table).
AUTHORIZATION_SERVER = {
    ("POST", PATHS["token_endpoint"]), ("POST", PATHS["pushed_authorization_request_endpoint"]),
    ("POST", PATHS["revocation_endpoint"]), ("POST", PATHS["introspection_endpoint"]),
    ("POST", PATHS["registration_endpoint"]), ("GET", PATHS["registration_endpoint"] + "/{client_id}"),
    ("DELETE", PATHS["registration_endpoint"] + "/{client_id}"),
    ("PUT", PATHS["registration_endpoint"] + "/{client_id}"),
    ("GET", PATHS["userinfo_endpoint"]), ("POST", PATHS["userinfo_endpoint"]), ("GET", PATHS["jwks_uri"]),
    ("GET", "/.well-known/openid-configuration"), ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/openapi.json"),
}


def _operations(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def _expected(policy) -> set[tuple[str, str]]:
    consent_api = {(method, path) for path, (_, route_ids) in CONSENT_API.items() for method in route_ids}
    return {(route.method, route.path) for route in policy.routes} | consent_api | AUTHORIZATION_SERVER


# The document, as data

def test_the_document_is_valid_openapi_3_0_and_lists_every_tpp_facing_route():
    policy = load_policy(ROOT / "policies")
    document = build_document(policy, CONSENT_API, ISSUER)
    assert document["openapi"].startswith("3.0.")
    assert [error.message for error in OPENAPI_30_VALIDATOR.iter_errors(document)] == []
    schemathesis.openapi.from_dict(document).validate()  # and schemathesis reads it as it is
    assert _operations(document) == _expected(policy)
    payments = document["paths"]["/open-banking/v3.1/pisp/domestic-payments"]["post"]
    assert payments["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OBWriteDomestic2"}
    assert {p["$ref"].split("/")[-1] for p in payments["parameters"]} >= {"x-idempotency-key", "x-jws-signature"}
    accounts = document["paths"]["/open-banking/v3.1/aisp/accounts"]["get"]
    assert accounts["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OBReadAccount6"}
    assert accounts["security"] == [{"PSUOAuth2Security": ["accounts"]}]
    refusal = document["components"]["responses"][accounts["responses"]["403"]["$ref"].split("/")[-1]]
    assert refusal["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OBErrorResponse1"}
    token = document["paths"]["/oauth2/token"]["post"]
    assert "grant_type" in token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["required"]
    error = document["components"]["responses"][token["responses"]["400"]["$ref"].split("/")[-1]]
    assert error["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OAuthError"}


def test_a_route_added_to_the_policy_is_documented_by_itself(tmp_path):
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    routes_file = tmp_path / "policies" / "routes.yaml"
    file_payment_read = """
  - id: pis.file_payments.get
    method: GET
    path: /open-banking/v3.1/pisp/file-payments/{FilePaymentId}
    service: payments
    scope: payments
    product: payments
    allows_consumed: true
    response_type: OBWriteFileResponse3
"""
    shipped = routes_file.read_text()
    assert file_payment_read in shipped
    routes_file.write_text(shipped.replace(file_payment_read, ""))
    without = build_document(load_policy(tmp_path / "policies"), CONSENT_API, ISSUER)
    assert "get" not in without["paths"].get("/open-banking/v3.1/pisp/file-payments/{FilePaymentId}", {})
    with routes_file.open("a") as routes:
        routes.write(file_payment_read + """
  - id: bank.products.list
    method: GET
    path: /open-banking/v3.1/bank/products/{ProductId}
    service: accounts
    scope: accounts
    pass_through: true
""")
    policy = load_policy(tmp_path / "policies")
    document = build_document(policy, CONSENT_API, ISSUER)
    assert [error.message for error in OPENAPI_30_VALIDATOR.iter_errors(document)] == []
    assert _operations(document) == _expected(policy)
    # UK OB defines the first: its answer is UK OB's; the second is described from the policy alone.
    files = document["paths"]["/open-banking/v3.1/pisp/file-payments/{FilePaymentId}"]
    assert files["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OBWriteFileResponse3"}
    products = document["paths"]["/open-banking/v3.1/bank/products/{ProductId}"]["get"]
    assert products["parameters"][0] == {"name": "ProductId", "in": "path", "required": True,
                                         "schema": {"type": "string"}}
    assert products["operationId"] == "bank.products.list" and "2XX" in products["responses"]


# The document, served

@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank)
    # Hundreds of generated calls in a few seconds: the rate limit would answer most of them before the pipeline.
    done = gw.cli("clients", "set-tier", "tpp-demo", "unlimited")
    assert done.returncode == 0, done.stderr
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def document(gateway, pki) -> dict:
    """The served document, fetched without a client certificate (it is public)."""
    with httpx.Client(verify=client_context(pki / "ca.pem")) as client:
        response = client.get(gateway.base + "/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


@pytest.mark.e2e
def test_the_served_document_is_public_and_its_calls_are_audited(gateway, document):
    assert document == build_document(load_policy(ROOT / "policies"), CONSENT_API, gateway.base)
    records = [r for r in gateway.audit() if r["route"] == "/openapi.json"]
    assert records and records[-1]["status"] == 200 and records[-1]["client_id"] is None


@dataclass
class Known:
    bearer: dict[tuple[str, str], str]         # (security scheme, scope) → a token of tpp-demo's
    values: dict[object, tuple[str, ...]]      # path parameter (or (method, parameter)) → real values
    payment_consent: str
    funds_consent: str
    jwk: dict                                  # tpp-demo's signing key (x-jws-signature)


@pytest.fixture(scope="module")
def known(gateway, pki) -> Known:
    """tpp-demo's tokens (client credentials, an authorised account-access consent, a payment consent that paid)
    and the real resources behind them, so generated calls can reach the bank and not only the refusals."""
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    try:
        accounts = tpp.consent_token(ALL_ACCOUNT_PERMISSIONS)
        initiation = domestic_initiation()
        payment_consent = tpp.payment_consent(initiation).json()["Data"]["ConsentId"]
        payments = tpp.authorise_payment(payment_consent)
        paid = tpp.pay(payments, payment_consent, initiation)
        assert paid.status_code == 201, paid.text
        listed = tpp.get("/open-banking/v3.1/aisp/accounts", accounts).json()["Data"]["Account"]
        statements = tpp.get(f"/open-banking/v3.1/aisp/accounts/{listed[0]['AccountId']}/statements",
                             accounts).json()["Data"]["Statement"]
        funds_consent = tpp.funds_consent(listed[0]["Account"][0])["ConsentId"]
        funds = tpp.authorise_funds(funds_consent)
        return Known(
            bearer={("TPPOAuth2Security", "accounts"): tpp.client_credentials("accounts")["access_token"],
                    ("TPPOAuth2Security", "payments"): tpp.client_credentials("payments")["access_token"],
                    ("PSUOAuth2Security", "accounts"): accounts["access_token"],
                    ("PSUOAuth2Security", "openid"): accounts["access_token"],  # its scope: openid accounts
                    ("PSUOAuth2Security", "payments"): payments["access_token"],
                    ("TPPOAuth2Security", "fundsconfirmations"):
                        tpp.client_credentials("fundsconfirmations")["access_token"],
                    ("PSUOAuth2Security", "fundsconfirmations"): funds["access_token"]},
            values={"AccountId": tuple(account["AccountId"] for account in listed),
                    "ConsentId": (accounts["consent_id"], payment_consent, funds_consent),
                    "StatementId": tuple(statement["StatementId"] for statement in statements),
                    ("DELETE", "ConsentId"): (tpp.create_consent()["ConsentId"],),  # a spare: the others stay
                    "DomesticPaymentId": (paid.json()["Data"]["DomesticPaymentId"],),
                    "client_id": ("tpp-demo",), ("DELETE", "client_id"): ()},          # never delete tpp-demo
            payment_consent=payment_consent, funds_consent=funds_consent, jwk=tpp.jwk)
    finally:
        tpp.close()


@pytest.fixture(scope="module")
def session():
    with requests.Session() as http:
        yield http


def _auth(operation, known: Known) -> dict[str, str]:
    """The token the operation's security asks for (a registration's management: the client's own token)."""
    for requirement in operation.definition.raw.get("security", []):
        for scheme, scopes in requirement.items():
            return {"Authorization": f"Bearer {known.bearer[scheme, (scopes or ['accounts'])[0]]}"}
    return {}


def _use_known_values(case, known: Known) -> None:
    """Half the generated path values become real ones (chosen by the generated value, so runs repeat)."""
    for name, value in (case.path_parameters or {}).items():
        choices = known.values.get((case.method.upper(), name), known.values.get(name, ()))
        if choices and len(str(value)) % 2 == 0:
            case.path_parameters[name] = choices[len(str(value)) // 2 % len(choices)]


# The document the gateway serves (test_the_served_document_is_public_and_its_calls_are_audited), built here so
# that pytest can parametrize over its operations: schemathesis's lazy `from_fixture` does not run on pytest 9.
# Per operation: MAX_EXAMPLES generated cases (positive and negative) and the coverage phase's boundary cases.
schema = schemathesis.openapi.from_dict(build_document(load_policy(ROOT / "policies"), CONSENT_API, ISSUER),
                                        config=SchemathesisConfig.from_dict({
    "seed": SEED,
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none",
                   "with-security-parameters": False},
    "phases": {"stateful": {"enabled": False}},
}))


def _signed(case, known: Known) -> tuple[dict, dict]:
    """(headers, transport arguments) that send half the bodies of a signed operation (chosen by the body) as
    tpp-demo signs them, a payment's under its real consent, so that they get past VerifySignature."""
    if "x-jws-signature" not in (case.headers or {}) or isinstance(case.body, NotSet):
        return {}, {}
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("Data"), dict) and "ConsentId" in body["Data"]:
        body = {**body, "Data": {**body["Data"], "ConsentId": known.payment_consent}}
    try:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
    except TypeError:  # bytes inside a JSON body (a coverage case): sent as schemathesis serialises it
        return {}, {}
    if len(content) % 2:
        return {}, {}
    return {"x-jws-signature": sign_detached(content, known.jwk, "tpp-demo")}, {"data": content}


@pytest.mark.e2e
@schema.parametrize()
def test_generated_calls_get_documented_answers_and_never_a_server_error(case, gateway, pki, known, session):
    _use_known_values(case, known)
    signature, body = _signed(case, known)
    case.call_and_validate(
        base_url=gateway.base, session=session,
        headers={**_auth(case.operation, known), **CUSTOMER_PRESENT, **signature}, **body,
        verify=str(pki / "ca.pem"), cert=(str(pki / "tpp-demo.pem"), str(pki / "tpp-demo.key")), timeout=10,
        checks=[schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance,
                response_headers_conformance, response_schema_conformance])


