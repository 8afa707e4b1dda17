"""Hostile inputs against a live `obgw serve --workers 2` in front of the sandbox bank, over real mutual TLS.

One parametrized test per family of attack; every case is one hostile input (its id says which), and each asserts
three things:

1. the refusal is the standard one: the catalogued status, OAuth error JSON on `/oauth2/*`, `OBErrorResponse1`
   (with `Id` = the interaction id) elsewhere, an HTML page from the customer pages, `x-fapi-interaction-id` on the
   answer, and never a redirect to anywhere but the registered redirect URI;
2. it is audited: exactly one record under the answer's interaction id (`obgw audit search --json`), refused, with
   the status and the reason id;
3. nothing changed: the consent's status, the consents / clients / payments in the store and the bank's ledger,
   what reached the back-end, and the legitimate call that still works.

A failure of (1) or (2) raises `ContractGap`, a failure of (3) an AssertionError: the safety checks come first.
Requests the HTTP parser itself refuses (control bytes, obs-fold, headers over the limits) are answered through the
app too (server.py), so they meet the same three checks.

Gateways: `gateway` is `obgw serve --workers 2` with the shipped policies in front of the sandbox bank (with a ledger
file, to count payments). `proxy_gateway` is a second one, started with `OBGW_TRUSTED_PROXIES=127.0.0.1` in front
of the echo back-end (tests/support/backend.py), for the proxy-mode cases and to see exactly which paths and headers
reach a back-end. Cases already proven by an existing test are not repeated; each family's SKIPPED note names it.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt
import orjson
import pytest
import redis as redis_lib
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from jwt.algorithms import ECAlgorithm, get_default_algorithms
from support.forms import forms, only_form
from support.gateway import (
    Gateway,
    bank_gateway,
    client_context,
    gateway_env,
    with_demo_tpps,
)
from support.policies import write_policy
from support.tpp import (
    ACCOUNTS,
    CONSENTS,
    PAYMENT_CONSENTS,
    PAYMENTS,
    Browser,
    Tpp,
    domestic_initiation,
    redirect_params,
)

from gateway import pki as pkimod
from gateway.payments.jws import sign_detached

pytestmark = pytest.mark.e2e

CUSTOMER_PRESENT = {"x-fapi-customer-ip-address": "198.51.100.7"}
REDIRECT_URI = "https://tpp.example.com/callback"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALL_READS = ["ReadAccountsBasic", "ReadAccountsDetail", "ReadBalances", "ReadTransactionsBasic",
             "ReadTransactionsCredits", "ReadTransactionsDebits"]
SELECTED = "acc-alice-current"                     # the one account the module's consent selected
OTHERS = ("acc-alice-savings", "acc-alice-card", "acc-bob-current", "acc-bob-savings")  # never to be seen


# -- what a refusal must look like -------------------------------------------------------------------------------------

class ContractGap(AssertionError):
    """The refusal is not the standard one (status, body, interaction id, audit record)."""


def gap(condition: object, message: str) -> None:
    if not condition:
        raise ContractGap(message)


@dataclass
class Answer:
    """An HTTP answer, from httpx or from a raw socket, as the checks below read it."""
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes = b""

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        return cls(response.status_code, [(k.lower(), v) for k, v in response.headers.multi_items()],
                   response.content)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def json(self):
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def raw_request(port: int, request: bytes, pki: Path, cert: str | None = "tpp-demo", timeout: float = 20) -> Answer:
    """One request written byte for byte over mutual TLS (httpx refuses to send most of what these cases send)."""
    context = client_context(pki / "ca.pem", pki / f"{cert}.pem" if cert else None,
                             pki / f"{cert}.key" if cert else None)
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock, \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            tls.sendall(request)  # a server that refuses early may stop reading: its answer is still read below
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith(b"HTTP/") else 0
    headers = [(k.strip().lower().decode("latin-1"), v.strip().decode("latin-1"))
               for k, _, v in (line.partition(b":") for line in lines[1:])]
    return Answer(status, headers, body, data)


def http_get(path: bytes, *lines: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(line + b"\r\n" for line in lines) + \
        b"Connection: close\r\n\r\n"


def interaction_id(answer: Answer) -> str:
    value = answer.header("x-fapi-interaction-id")
    gap(value, f"no x-fapi-interaction-id on the answer (status {answer.status}): {answer.body[:120]!r}")
    gap(len(answer.all("x-fapi-interaction-id")) == 1, "more than one x-fapi-interaction-id")
    try:
        uuid.UUID(value)
    except ValueError:
        raise ContractGap(f"x-fapi-interaction-id is not a UUID: {value!r}") from None
    return value


def assert_ob_refusal(answer: Answer, status: int, code: str | None = None) -> str:
    """OBErrorResponse1, with the interaction id as its Id; returns the interaction id."""
    gap(answer.status == status, f"status {answer.status}, expected {status}: {answer.body[:200]!r}")
    iid = interaction_id(answer)
    try:
        body = answer.json()
    except orjson.JSONDecodeError:
        raise ContractGap(f"not an OBErrorResponse1: {answer.body[:200]!r}") from None
    gap(isinstance(body, dict) and set(body) == {"Code", "Id", "Message", "Errors"}, f"not an OBErrorResponse1: {body}")
    gap(body["Code"] == str(status) and body["Id"] == iid, body)
    gap(body["Errors"] and all(e["ErrorCode"].startswith(("UK.OBIE.", "OBGW.")) for e in body["Errors"]), body)
    if code:
        gap(body["Errors"][0]["ErrorCode"] == code, body)
    assert answer.header("location") is None
    return iid


def assert_oauth_refusal(answer: Answer, status: int, error: str | None = None) -> str:
    """RFC 6749 §5.2 error JSON answered to the client, never a redirect."""
    gap(answer.status == status, f"status {answer.status}, expected {status}: {answer.body[:200]!r}")
    iid = interaction_id(answer)
    gap((answer.header("content-type") or "").startswith("application/json"), answer.headers)
    body = answer.json()
    gap(isinstance(body, dict) and set(body) <= {"error", "error_description", "error_uri"} and body.get("error"),
        body)
    if error:
        gap(body["error"] == error, body)
    assert answer.header("location") is None, "an OAuth error JSON never redirects"
    return iid


def assert_page_refusal(answer: Answer, status: int) -> str:
    """A customer page's refusal: an HTML page (never a redirect before the redirect URI is trusted)."""
    gap(answer.status == status, f"status {answer.status}, expected {status}: {answer.body[:200]!r}")
    gap((answer.header("content-type") or "").startswith("text/html"), answer.headers)
    assert answer.header("location") is None, f"a refusal page must not redirect: {answer.header('location')}"
    gap(answer.header("cache-control") == "no-store" and answer.header("x-frame-options") == "DENY", answer.headers)
    return interaction_id(answer)


# -- the audit log, as `obgw audit search --json` prints it ------------------------------------------------------------

class AuditLog:
    """`obgw audit search --json --var-dir <the gateway's>` run in this process (its parser, its printing): the
    command a security team runs, without paying a Python start per case."""

    def __init__(self, gateway: Gateway) -> None:
        self.var_dir = gateway.env["OBGW_VAR_DIR"]
        self.since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()

    def search(self, *filters: str) -> list[dict]:
        import argparse

        from gateway.cli.audit import register
        parser = argparse.ArgumentParser(prog="obgw")
        register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["audit", "search", "--json", "--var-dir", self.var_dir, "--since", self.since,
                                  *filters])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert args.func(args) == 0
        return [json.loads(line) for line in out.getvalue().splitlines()]

    def refused(self, iid: str, status: int, reason: str | tuple[str, ...]) -> dict:
        """The one record of interaction `iid`: refused, with this status and reason (or one of these; a reason
        ending in "." is a prefix, for refusals the catalogue does not have yet)."""
        mine = [r for r in self.search() if r["interaction_id"] == iid]
        gap(len(mine) == 1, f"expected one audit record for {iid}, found {mine}")
        record = mine[0]
        reasons = (reason,) if isinstance(reason, str) else reason
        named = any(record["reason"] == r or r.endswith(".") and str(record["reason"]).startswith(r) for r in reasons)
        gap(record["decision"] == "refuse" and record["status"] == status and named,
            f"audit record {record} is not a refusal {status} {reasons}")
        return record


# -- the processes -----------------------------------------------------------------------------------------------------

def redis_of(gateway: Gateway) -> redis_lib.Redis:
    url = (Path(gateway.env["OBGW_VAR_DIR"]) / "redis" / "redis.url").read_text().strip()
    return redis_lib.Redis.from_url(url)


@pytest.fixture(scope="module")
def echo(backend):
    """The echo back-end (tests/support/backend.py): it counts every path that reaches it."""
    return backend


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, ledger):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, ledger[0], workers=2)
    # Both demo TPPs on the unlimited tier: this module's hundreds of calls must meet the refusal under test, not
    # the rate limit (which has its own tests).
    store = redis_of(gw)
    try:
        from gateway.store.clients import ClientStore
        for client_id in ("tpp-demo", "tpp-other"):
            ClientStore(store).set_tier(client_id, "unlimited")
    finally:
        store.close()
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def proxy_gateway(tmp_path_factory, pki, echo, ledger):
    """`obgw serve` trusting 127.0.0.1 as a TLS-terminating proxy (so every caller in this test is one), routing
    the account reads to the echo back-end; the sandbox bank checks the customers' passwords."""
    root = tmp_path_factory.mktemp("proxy-gw")
    write_policy(root / "policies", echo, ledger[0][0])
    gw = Gateway(gateway_env(root / "var", pki, root / "policies", OBGW_TRUSTED_PROXIES="127.0.0.1"), workers=1)
    yield with_demo_tpps(gw, pki)
    assert gw.stop() == 0


def rfc9440(pem: bytes) -> str:
    """RFC 9440 Client-Cert: a structured-field byte sequence of the certificate's DER."""
    return ":" + base64.b64encode(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)).decode() + ":"


@dataclass
class World:
    """Everything the cases need, made once per module."""
    pki: Path
    gw: Gateway
    proxy: Gateway
    echo: str
    ledger: Path
    audit: AuditLog
    proxy_audit: AuditLog
    tpp: Tpp                        # tpp-demo on `gw`
    token: dict                     # tpp-demo's consent token on `gw`: ALL_READS, only SELECTED
    other_token: dict               # tpp-other's, the same consent shape
    proxy_token: dict               # tpp-demo's consent token on `proxy_gw` (through the "proxy")
    demo_cert_header: str           # RFC 9440 Client-Cert of tpp-demo
    listener: str                   # where a forged jku/x5u points
    listener_hits: list = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.gw.port

    def accounts_call(self, access_token: str, headers: dict | None = None) -> Answer:
        return Answer.of(self.tpp.http.get(self.gw.base + ACCOUNTS, headers={
            "Authorization": f"Bearer {access_token}", **CUSTOMER_PRESENT, **(headers or {})}))

    def still_works(self) -> None:
        """The legitimate call goes on working after the refusal."""
        answer = self.accounts_call(self.token["access_token"])
        assert answer.status == 200, answer.text
        assert [a["AccountId"] for a in answer.json()["Data"]["Account"]] == [SELECTED]

    def consent_status(self, consent_id: str, tpp: Tpp | None = None, scope: str = "accounts") -> str:
        tpp = tpp or self.tpp
        base = CONSENTS if scope == "accounts" else PAYMENT_CONSENTS
        response = tpp.get(f"{base}/{consent_id}", tpp.client_credentials(scope))
        assert response.status_code == 200, response.text
        return response.json()["Data"]["Status"]

    def counts(self) -> dict[str, int]:
        """What a refused call must not have added: consents, clients, payments (the bank's own ledger)."""
        from gateway.store.clients import ClientStore
        from gateway.store.consents import ConsentStore
        store = redis_of(self.gw)
        try:
            consents = sum(1 for _ in ConsentStore(store).all())
            clients = sum(1 for _ in ClientStore(store).all())
        finally:
            store.close()
        payments = len([line for line in self.ledger.read_text().splitlines() if line.strip()]) \
            if self.ledger.exists() else 0
        return {"consents": consents, "clients": clients, "payments": payments}

    def echo_seen(self) -> dict[str, int]:
        return httpx.get(self.echo + "/control/seen", timeout=5).json()

    def proxy_call(self, path: bytes, *lines: bytes, cert_header: str | None = None) -> Answer:
        """A raw GET through the proxy-mode gateway, as the trusted proxy forwarding tpp-demo's certificate."""
        header = (cert_header if cert_header is not None else self.demo_cert_header).encode()
        return raw_request(self.proxy.port, http_get(
            path, b"Authorization: Bearer " + self.proxy_token["access_token"].encode(),
            b"x-fapi-customer-ip-address: 198.51.100.7", b"client-cert: " + header, *lines), self.pki)


@pytest.fixture(scope="module")
def listener():
    """An HTTP server a forged token's jku/x5u points at: the gateway must never fetch from it."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = json.dumps({"keys": []}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def world(pki, gateway, proxy_gateway, echo, ledger, listener):
    tpp, other = Tpp(gateway.base, pki, "tpp-demo"), Tpp(gateway.base, pki, "tpp-other")
    proxy_tpp = Tpp(proxy_gateway.base, pki, "tpp-demo")
    demo_header = rfc9440((pki / "tpp-demo.pem").read_bytes())
    try:
        token = tpp.consent_token(ALL_READS, accounts=[SELECTED])
        other_token = other.consent_token(ALL_READS, accounts=[SELECTED])
        # Through the proxy-mode gateway every call of the flow carries the certificate as the proxy would.
        proxy_tpp.http.headers["client-cert"] = demo_header
        proxy_tpp.oauth.headers["client-cert"] = demo_header
        proxy_token = proxy_tpp.consent_token(["ReadAccountsBasic"], accounts=[SELECTED])
        yield World(pki, gateway, proxy_gateway, echo, ledger[1], AuditLog(gateway), AuditLog(proxy_gateway), tpp,
                    token, other_token, proxy_token, demo_header, listener[0], listener[1])
    finally:
        tpp.close()
        other.close()
        proxy_tpp.close()


# -- 1. JWT ------------------------------------------------------------------------------------------------------------
# SKIPPED, proven by tests/e2e/test_oauth_refusals.py: alg none (test_a_forged_or_expired_token_is_refused[alg none]),
# HS256 with the gateway's public key as PEM ([HS256 with the public key]), a key of one's own under the real kid
# ([own key, real kid]) or one's own kid ([own key and kid]), an expired token ([expired, real key]), a kid that is
# an integer and crit ["x"] (test_a_jwt_header_pyjwt_refuses_is_a_clean_401_everywhere[kid-not-a-string,
# unknown-crit]); for client assertions, alg none / HS256 / wrong aud / expired / unknown key
# (test_a_bad_client_assertion_is_refused_and_burns_nothing); for software statements, unsigned / unknown
# directory key / tampered / alg the key does not use (tests/e2e/test_registration.py).

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws(header: dict, claims: dict, key=None, alg: str | None = None, secret: bytes | None = None) -> str:
    """A compact JWS with exactly this header, signed by `key` with `alg` (PyJWT's algorithms), or HMAC'd with
    `secret`, or unsigned."""
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    if secret is not None:
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
        signature = hmac.new(secret, signing_input, digest).digest()
    elif key is not None:
        algorithm = get_default_algorithms()[alg]
        signature = algorithm.sign(signing_input, key)
    else:
        signature = b""
    return signing_input.decode() + "." + b64url(signature)


def real_claims(world: World) -> dict:
    claims = jwt.decode(world.token["access_token"], options={"verify_signature": False})
    return claims | {"jti": str(uuid.uuid4())}


def real_header(world: World) -> dict:
    return jwt.get_unverified_header(world.token["access_token"])


def gateway_key(world: World):
    """The gateway's own private signing key (to mint tokens only the claims spoil)."""
    return world.gw.signing_key(real_header(world)["kid"])


def public_jwk_json(world: World) -> bytes:
    jwks = world.tpp.http.get(world.tpp.metadata["jwks_uri"]).json()
    kid = real_header(world)["kid"]
    return json.dumps(next(k for k in jwks["keys"] if k["kid"] == kid)).encode()


def stranger() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def stranger_jwk(key) -> dict:
    return ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "attacker"}


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_pem(key) -> str:
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "obgw dev CA")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()


def _with_key(world: World, header: dict, claims: dict | None = None) -> str:
    """The real token with `header` (and `claims`), signed by the gateway's own key: only what the case changed is
    wrong, so the refusal is for that and nothing else."""
    return jws(header, claims or real_claims(world), gateway_key(world), "ES256")


def _forged(world: World, case: str) -> str:
    real, claims = real_header(world), real_claims(world)
    mine = stranger()
    tpp_key = ECAlgorithm.from_jwk(json.dumps(world.tpp.jwk))
    return {
        # Algorithm confusion
        "hs256-secret-is-the-public-jwk": lambda: jws(real | {"alg": "HS256"}, claims, alg="HS256",
                                                      secret=public_jwk_json(world)),
        "hs384-secret-is-the-public-jwk": lambda: jws(real | {"alg": "HS384"}, claims, alg="HS384",
                                                      secret=public_jwk_json(world)),
        "rs256-own-rsa-key": lambda: jws(real | {"alg": "RS256"}, claims, rsa_key(), "RS256"),
        "ps256-own-rsa-key": lambda: jws(real | {"alg": "PS256"}, claims, rsa_key(), "PS256"),
        "es384-own-key": lambda: jws(real | {"alg": "ES384"}, claims, ec.generate_private_key(ec.SECP384R1()),
                                     "ES384"),
        "alg-NONE-uppercase": lambda: jws(real | {"alg": "NONE"}, claims),
        "alg-missing": lambda: jws({k: v for k, v in real.items() if k != "alg"}, claims),
        # kid tricks (signed by a key of the attacker's)
        "kid-path-traversal": lambda: jws(real | {"kid": "../../etc/passwd"}, claims, mine, "ES256"),
        "kid-of-the-tpps-own-key": lambda: jws(real | {"kid": world.tpp.jwk["kid"]}, claims, tpp_key, "ES256"),
        "kid-empty": lambda: jws(real | {"kid": ""}, claims, mine, "ES256"),
        "kid-10k-characters": lambda: jws(real | {"kid": "k" * 10_000}, claims, mine, "ES256"),
        "kid-null": lambda: jws(real | {"kid": None}, claims, mine, "ES256"),
        "kid-a-list": lambda: jws(real | {"kid": [real["kid"]]}, claims, mine, "ES256"),
        "kid-nul-and-crlf": lambda: jws(real | {"kid": real["kid"] + "\u0000\r\nx"}, claims, mine, "ES256"),
        # Keys named by the token itself must be ignored
        "jwk-header-with-the-attackers-key": lambda: jws(real | {"jwk": stranger_jwk(mine)}, claims, mine, "ES256"),
        "jku-to-the-attackers-jwks": lambda: jws(real | {"kid": "attacker", "jku": world.listener + "/jwks.json"},
                                                 claims, mine, "ES256"),
        "x5u-to-the-attackers-certificate": lambda: jws(real | {"kid": "attacker", "x5u": world.listener + "/c.pem"},
                                                        claims, mine, "ES256"),
        "x5c-with-the-attackers-certificate": lambda: jws(real | {"x5c": [self_signed_pem(mine)]}, claims, mine,
                                                          "ES256"),
        # crit with extensions the gateway does not understand
        "crit-b64-false": lambda: _with_key(world, real | {"crit": ["b64"], "b64": False}),
        "crit-names-a-registered-header": lambda: _with_key(world, real | {"crit": ["kid"]}),
        "crit-empty-list": lambda: _with_key(world, real | {"crit": []}),
        "crit-openbanking-claims": lambda: _with_key(world, real | {
            "crit": ["http://openbanking.org.uk/iat"], "http://openbanking.org.uk/iat": int(time.time())}),
        # Another issuer or audience (signed by the gateway's own key: only the claim is wrong)
        "another-issuer": lambda: _with_key(world, real, claims | {"iss": "https://other-bank.example"}),
        "another-audience": lambda: _with_key(world, real, claims | {"aud": "https://other-bank.example/open-banking"}),
        "audience-list-without-ours": lambda: _with_key(world, real, claims | {"aud": ["https://a.example",
                                                                                       "https://b.example"]}),
        "token-of-another-gateway": lambda: world.proxy_token["access_token"],
        # typ
        "id-token-as-access-token": lambda: world.token["id_token"],
        "typ-JWT": lambda: _with_key(world, real | {"typ": "JWT"}),
        "typ-missing": lambda: _with_key(world, {k: v for k, v in real.items() if k != "typ"}),
        "not-bound-to-a-certificate": lambda: _with_key(world, real, {k: v for k, v in claims.items() if k != "cnf"}),
    }[case]()


JWT_CASES = {
    "hs256-secret-is-the-public-jwk": "token.bad_signature",
    "hs384-secret-is-the-public-jwk": "token.bad_signature",
    "rs256-own-rsa-key": "token.bad_signature",
    "ps256-own-rsa-key": "token.bad_signature",
    "es384-own-key": "token.bad_signature",
    "alg-NONE-uppercase": "token.bad_signature",
    "alg-missing": "token.bad_signature",
    "kid-path-traversal": "token.unknown_key",
    "kid-of-the-tpps-own-key": "token.unknown_key",
    "kid-empty": "token.unknown_key",
    "kid-10k-characters": "token.unknown_key",
    "kid-null": "token.malformed",
    "kid-a-list": "token.malformed",
    "kid-nul-and-crlf": "token.unknown_key",
    "jwk-header-with-the-attackers-key": "token.bad_signature",
    "jku-to-the-attackers-jwks": "token.unknown_key",
    "x5u-to-the-attackers-certificate": "token.unknown_key",
    "x5c-with-the-attackers-certificate": "token.bad_signature",
    "crit-b64-false": "token.malformed",
    "crit-names-a-registered-header": "token.malformed",
    "crit-empty-list": "token.malformed",
    "crit-openbanking-claims": "token.malformed",
    "another-issuer": "token.wrong_audience",
    "another-audience": "token.wrong_audience",
    "audience-list-without-ours": "token.wrong_audience",
    "token-of-another-gateway": "token.unknown_key",
    "id-token-as-access-token": "token.malformed",
    "typ-JWT": "token.malformed",
    "typ-missing": "token.malformed",
    "not-bound-to-a-certificate": "token.malformed",
}

# The same header tricks where the gateway verifies the TPP's and the directory's JWTs.
ASSERTION_CASES = ("assertion-kid-path-traversal", "assertion-jku-to-the-attackers-jwks",
                   "assertion-jwk-header-with-the-attackers-key", "assertion-without-jti",
                   "statement-hs256-secret-is-the-directory-key", "statement-jku-to-the-attackers-jwks",
                   "statement-without-software-id")
def _assertion(world: World, case: str) -> tuple[str, dict]:
    """(endpoint, form or JSON body) of a client assertion or a software statement with a hostile header."""
    now = int(time.time())
    tpp, mine = world.tpp, stranger()
    claims = {"iss": tpp.client_id, "sub": tpp.client_id, "aud": tpp.issuer, "iat": now, "exp": now + 60,
              "jti": str(uuid.uuid4())}
    token_form = {"grant_type": "client_credentials", "scope": "accounts", "client_assertion_type": ASSERTION_TYPE}
    directory = json.loads((world.pki / "directory.json").read_text())
    statement = {"iss": directory["iss"], "iat": now, "jti": str(uuid.uuid4()), "software_id": "tpp-demo",
                 "software_roles": ["AISP"], "software_redirect_uris": [REDIRECT_URI]}
    directory_key = ECAlgorithm.from_jwk(json.dumps(directory["private_jwk"]))
    directory_public = json.dumps(pkimod.public_jwk(directory["private_jwk"])).encode()
    tpp_key = ECAlgorithm.from_jwk(json.dumps(tpp.jwk))
    made = {
        "assertion-kid-path-traversal": lambda: jws({"alg": "ES256", "kid": "../../" + tpp.jwk["kid"]}, claims, mine,
                                                    "ES256"),
        "assertion-jku-to-the-attackers-jwks": lambda: jws({"alg": "ES256", "kid": "attacker",
                                                            "jku": world.listener + "/a.json"}, claims, mine, "ES256"),
        "assertion-jwk-header-with-the-attackers-key": lambda: jws(
            {"alg": "ES256", "kid": tpp.jwk["kid"], "jwk": stranger_jwk(mine)}, claims, mine, "ES256"),
        "assertion-without-jti": lambda: jws({"alg": "ES256", "kid": tpp.jwk["kid"]},
                                             {k: v for k, v in claims.items() if k != "jti"}, tpp_key, "ES256"),
        "statement-hs256-secret-is-the-directory-key": lambda: jws(
            {"alg": "HS256", "kid": directory["private_jwk"]["kid"]}, statement, alg="HS256", secret=directory_public),
        "statement-jku-to-the-attackers-jwks": lambda: jws(
            {"alg": "ES256", "kid": "attacker", "jku": world.listener + "/d.json"}, statement, mine, "ES256"),
        "statement-without-software-id": lambda: jws(
            {"alg": "ES256", "kid": directory["private_jwk"]["kid"]},
            {k: v for k, v in statement.items() if k != "software_id"}, directory_key, "ES256"),
    }[case]()
    if case.startswith("assertion-"):
        return "token_endpoint", token_form | {"client_assertion": made}
    return "registration_endpoint", {"software_statement": made, "token_endpoint_auth_method": "private_key_jwt"}


ASSERTION_EXPECTED = {
    "assertion-kid-path-traversal": (401, "invalid_client"),
    "assertion-jku-to-the-attackers-jwks": (401, "invalid_client"),
    "assertion-jwk-header-with-the-attackers-key": (401, "invalid_client"),
    "assertion-without-jti": (401, "invalid_client"),
    "statement-hs256-secret-is-the-directory-key": (400, "invalid_software_statement"),
    "statement-jku-to-the-attackers-jwks": (400, "unapproved_software_statement"),
    "statement-without-software-id": (400, "invalid_software_statement"),
}


@pytest.mark.parametrize("case", [*JWT_CASES, *ASSERTION_CASES])
def test_jwt_a_forged_or_confused_token_is_refused(world, case):
    before = world.counts()
    hits = len(world.listener_hits)
    if case in JWT_CASES:
        answer = world.accounts_call(_forged(world, case))
        iid = assert_ob_refusal(answer, 401, "UK.OBIE.Header.Invalid")
        assert (answer.header("www-authenticate") or "").startswith("Bearer"), answer.headers
        world.audit.refused(iid, 401, JWT_CASES[case])
    else:
        endpoint, body = _assertion(world, case)
        url = world.tpp.metadata[endpoint]
        response = world.tpp.http.post(url, json=body) if endpoint == "registration_endpoint" else \
            world.tpp.http.post(url, data=body)
        status, error = ASSERTION_EXPECTED[case]
        iid = assert_oauth_refusal(Answer.of(response), status, error)
        world.audit.refused(iid, status, f"oauth.{error}")
    # Nothing changed: no key was fetched from where the token pointed, nothing was issued or registered, and the
    # real token still reads the one selected account.
    assert len(world.listener_hits) == hits, world.listener_hits
    assert world.counts() == before
    world.still_works()


# -- 2. Oversized, deeply nested and duplicated JSON (and forms) -------------------------------------------------------
# SKIPPED, proven elsewhere: a resource body over the route's limit, declared or streamed
# (tests/e2e/test_backend_protection.py::test_a_body_over_the_route_limit_is_refused_and_never_forwarded,
# ::test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent); a body cut short
# (tests/e2e/test_gateway.py::test_a_request_body_cut_short_is_never_forwarded).

TEN_MB = 10 * 1024 * 1024
def nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


def _consent_body(case: str) -> bytes:
    return {
        "consent-10k-nested-arrays": b'{"Data":{"Permissions":["ReadAccountsBasic"],"x":' + nested(10_000) +
                                     b'},"Risk":{}}',
        "consent-10k-nested-objects": b'{"Data":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b',"Risk":{}}',
        "consent-10MB-string": b'{"Data":{"Permissions":["ReadAccountsBasic"],"x":"' + b"x" * TEN_MB + b'"}}',
        "consent-huge-integer": b'{"Data":{"Permissions":["ReadAccountsBasic"],"ExpirationDateTime":' +
                                b"9" * 5000 + b'},"Risk":{}}',
        "consent-huge-exponent": b'{"Data":{"Permissions":["ReadAccountsBasic"]},"Risk":{"x":1e999999}}',
        "consent-NaN-and-Infinity": b'{"Data":{"Permissions":["ReadAccountsBasic"]},"Risk":{"x":NaN,"y":Infinity}}',
        "consent-duplicate-Data": b'{"Data":{"Permissions":["ReadAccountsBasic"]},'
                                  b'"Data":{"Permissions":["ReadAccountsDetail","ReadPAN"]},"Risk":{}}',
        "consent-duplicate-Permissions": b'{"Data":{"Permissions":["ReadAccountsBasic"],'
                                         b'"Permissions":["ReadAccountsDetail","ReadPAN"]},"Risk":{}}',
    }[case]


def _payment_consent_body(case: str, initiation: dict) -> bytes:
    consented = orjson.dumps(initiation)
    return {
        "payment-consent-10k-nested-arrays": b'{"Data":{"Initiation":' + nested(10_000) + b'},"Risk":{}}',
        "payment-consent-10MB-string": b'{"Data":{"Initiation":"' + b"x" * TEN_MB + b'"},"Risk":{}}',
        "payment-consent-huge-amount-number": consented.replace(b'"12.34"', b"1" + b"0" * 5000).join(
            (b'{"Data":{"Initiation":', b'},"Risk":{}}')),
        "payment-consent-duplicate-Initiation": b'{"Data":{"Initiation":' +
                                                orjson.dumps(domestic_initiation("999.00", "NOT-THIS")) +
                                                b',"Initiation":' + consented + b'},"Risk":{}}',
    }[case]


def _dcr_body(case: str) -> bytes:
    return {
        "dcr-10k-nested-arrays": b'{"software_statement":' + nested(10_000) + b"}",
        "dcr-10MB-string": b'{"software_statement":"' + b"x" * TEN_MB + b'"}',
        "dcr-huge-integer": b'{"software_statement":"x","token_endpoint_auth_method":' + b"9" * 5000 + b"}",
        "dcr-not-an-object": b'["software_statement"]',
    }[case]


BODY_CASES = {
    # case: (status, OAuth error or UK OB ErrorCode, audit reason)
    "consent-10k-nested-arrays": (400, "UK.OBIE.Resource.InvalidFormat", "request.invalid_json"),
    "consent-10k-nested-objects": (400, "UK.OBIE.Resource.InvalidFormat", "request.invalid_json"),
    "consent-10MB-string": (413, "UK.OBIE.Field.Invalid", "request.too_large"),
    "consent-10MB-chunked": (413, "UK.OBIE.Field.Invalid", "request.too_large"),
    "consent-huge-integer": (400, "UK.OBIE.Resource.InvalidFormat", "request.invalid_json"),
    "consent-huge-exponent": (400, "UK.OBIE.Resource.InvalidFormat", "request.invalid_json"),
    "consent-NaN-and-Infinity": (400, "UK.OBIE.Resource.InvalidFormat", "request.invalid_json"),
    "consent-duplicate-Data": (400, None, ("request.invalid_json", "consent.field_invalid")),
    "consent-duplicate-Permissions": (400, None, ("request.invalid_json", "consent.field_invalid")),
    "payment-consent-10k-nested-arrays": (400, "UK.OBIE.Resource.InvalidFormat", "request.invalid_json"),
    "payment-consent-10MB-string": (413, "UK.OBIE.Field.Invalid", "request.too_large"),
    "payment-consent-huge-amount-number": (400, "UK.OBIE.Resource.InvalidFormat", "request.invalid_json"),
    "payment-consent-duplicate-Initiation": (400, None, ("request.invalid_json", "consent.field_invalid")),
    "payment-duplicate-Initiation": (400, None, ("request.invalid_json", "payment.consent_mismatch")),
    "payment-10k-nested-arrays": (400, "UK.OBIE.Resource.InvalidFormat", "request.invalid_json"),
    "dcr-10k-nested-arrays": (400, "invalid_request", "oauth.invalid_request"),
    "dcr-10MB-string": (413, "invalid_request", "request.too_large"),
    "dcr-huge-integer": (400, "invalid_request", "oauth.invalid_request"),
    "dcr-not-an-object": (400, "invalid_request", "oauth.invalid_request"),
    "dcr-duplicate-software_statement": (400, None, ("oauth.invalid_request", "oauth.invalid_software_statement")),
    "token-form-10MB": (413, "invalid_request", "request.too_large"),
    "token-form-duplicate-grant_type": (400, "invalid_request", "oauth.invalid_request"),
    "token-form-duplicate-parameter-with-a-quote": (400, "invalid_request", "oauth.invalid_request"),
    "par-form-duplicate-non-ascii-parameter": (400, "invalid_request", "oauth.invalid_request"),
}


def _chunks(body: bytes, size: int = 1 << 20):
    for start in range(0, len(body), size):
        yield body[start:start + size]


def authorised_payment(world: World) -> tuple[str, dict, dict]:
    """A payment consent alice authorised (paying from SELECTED): (consent id, its Initiation, its token)."""
    initiation = domestic_initiation()
    consent = world.tpp.payment_consent(initiation)
    assert consent.status_code == 201, consent.text
    consent_id = consent.json()["Data"]["ConsentId"]
    return consent_id, initiation, world.tpp.authorise_payment(consent_id, "alice", SELECTED)


def _register_with_duplicate_statement(world: World) -> httpx.Response:
    """DCR by a new TPP (a certificate of the trusted CA, CN = its software_id) whose body names software_statement
    twice: junk first, a directory-signed statement last. A first-wins reader of these bytes sees junk."""
    name = "dup-" + secrets.token_hex(4)
    directory = json.loads((world.pki / "directory.json").read_text())
    signing = pkimod.make_signing_jwk()
    now = int(time.time())
    statement = jwt.encode({"iss": directory["iss"], "iat": now, "jti": str(uuid.uuid4()), "software_id": name,
                            "software_client_name": name, "software_roles": ["AISP"],
                            "software_redirect_uris": ["https://dup.example/cb"],
                            "software_jwks": {"keys": [pkimod.public_jwk(signing)]}},
                           ECAlgorithm.from_jwk(json.dumps(directory["private_jwk"])), "ES256",
                           headers={"kid": directory["private_jwk"]["kid"]})
    body = b'{"software_statement":"junk","software_statement":"' + statement.encode() + \
        b'","token_endpoint_auth_method":"private_key_jwt"}'
    with tempfile.TemporaryDirectory() as directory_name:
        folder = Path(directory_name)
        pkimod.issue_client_cert(pkimod.load_ca(world.pki), name).write(folder / "c.pem", folder / "c.key")
        with httpx.Client(verify=client_context(world.pki / "ca.pem", folder / "c.pem", folder / "c.key"),
                          timeout=15) as newcomer:
            return newcomer.post(world.tpp.metadata["registration_endpoint"], content=body,
                                 headers={"content-type": "application/json"})


def _post_body(world: World, case: str, payment) -> httpx.Response:
    tpp = world.tpp
    form = {"content-type": "application/x-www-form-urlencoded"}
    if case.startswith("consent-"):
        token = tpp.client_credentials()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
        if case == "consent-10MB-chunked":
            return tpp.http.post(world.gw.base + CONSENTS, content=_chunks(b'{"a":"' + b"x" * TEN_MB + b'"}'),
                                 headers=headers)
        return tpp.http.post(world.gw.base + CONSENTS, content=_consent_body(case), headers=headers)
    if case.startswith("payment-consent-"):
        body = _payment_consent_body(case, domestic_initiation())
        token = tpp.client_credentials("payments")["access_token"]
        return tpp.http.post(world.gw.base + PAYMENT_CONSENTS, content=body, headers={
            "Authorization": f"Bearer {token}", "content-type": "application/json",
            "x-idempotency-key": secrets.token_hex(8), "x-jws-signature": sign_detached(body, tpp.jwk, tpp.client_id)})
    if case.startswith("payment-"):
        consent_id, initiation, token = payment
        if case == "payment-10k-nested-arrays":
            body = b'{"Data":{"ConsentId":"' + consent_id.encode() + b'","Initiation":' + nested(10_000) + \
                b'},"Risk":{}}'
        else:  # the consented Initiation last (what the gateway checks), another one first
            body = b'{"Data":{"ConsentId":"' + consent_id.encode() + b'","Initiation":' + \
                orjson.dumps(domestic_initiation("999.00", "NOT-THIS")) + b',"Initiation":' + \
                orjson.dumps(initiation) + b'},"Risk":{}}'
        return tpp.http.post(world.gw.base + PAYMENTS, content=body, headers={
            "Authorization": f"Bearer {token['access_token']}", "content-type": "application/json",
            "x-idempotency-key": secrets.token_hex(8), "x-jws-signature": sign_detached(body, tpp.jwk, tpp.client_id),
            **CUSTOMER_PRESENT})
    if case == "dcr-duplicate-software_statement":
        return _register_with_duplicate_statement(world)
    if case.startswith("dcr-"):
        return tpp.http.post(tpp.metadata["registration_endpoint"], content=_dcr_body(case),
                             headers={"content-type": "application/json"})
    if case == "token-form-10MB":
        return tpp.http.post(tpp.metadata["token_endpoint"], content=b"grant_type=" + b"x" * TEN_MB, headers=form)
    if case == "token-form-duplicate-grant_type":
        return tpp.http.post(tpp.metadata["token_endpoint"], headers=form,
                             content=b"grant_type=client_credentials&grant_type=authorization_code&client_id=tpp-demo")
    if case == "token-form-duplicate-parameter-with-a-quote":
        return tpp.http.post(tpp.metadata["token_endpoint"], headers=form,
                             content=b"grant_type=client_credentials&client_id=tpp-demo&%22=1&%22=2")
    if case == "par-form-duplicate-non-ascii-parameter":
        return tpp.http.post(tpp.metadata["pushed_authorization_request_endpoint"], headers=form,
                             content=b"client_id=tpp-demo&%C3%A9=1&%C3%A9=2")
    raise AssertionError(case)


@pytest.mark.parametrize("case", BODY_CASES)
def test_json_an_oversized_nested_or_duplicated_body_is_a_400_or_413_never_a_500(world, case):
    paying = case.startswith("payment-") and not case.startswith("payment-consent-")
    payment = authorised_payment(world) if paying else None
    before = world.counts()
    status, code, reason = BODY_CASES[case]
    answer = Answer.of(_post_body(world, case, payment))
    assert answer.status < 500, answer.text  # never a 500
    if case.startswith(("dcr-", "token-", "par-")):
        iid = assert_oauth_refusal(answer, status, code)
    else:
        iid = assert_ob_refusal(answer, status, code)
    world.audit.refused(iid, status, reason)
    assert world.counts() == before  # no consent, client or payment was made
    if payment is not None:
        assert world.consent_status(payment[0], scope="payments") == "Authorised"  # not used up


# -- 3. Header injection and oversized headers -------------------------------------------------------------------------
# SKIPPED, proven by tests/e2e/test_gateway.py: a non-UUID x-fapi-interaction-id ("<script>") is replaced
# (test_the_interaction_id_is_echoed_and_a_bad_one_replaced); spoofable and hop-by-hop headers never reach the bank
# (test_spoofable_and_hop_by_hop_headers_never_reach_the_bank_or_the_tpp).

MARK = b"Set-Cookie: injected=1"


def _header_request(world: World, case: str) -> bytes:
    """The raw request of the case."""
    bearer = b"Authorization: Bearer " + world.token["access_token"].encode()
    ip = b"x-fapi-customer-ip-address: 198.51.100.7"

    def get(*lines: bytes, target: bytes = ACCOUNTS.encode()) -> bytes:
        return http_get(target, *lines)

    if case == "idempotency-key-CRLF-then-a-header":
        cc = b"Authorization: Bearer " + world.tpp.client_credentials("payments")["access_token"].encode()
        return (b"POST " + PAYMENT_CONSENTS.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cc +
                b"\r\ncontent-type: application/json\r\nx-idempotency-key: k\r\r\n" + MARK +
                b"\r\ncontent-length: 2\r\nConnection: close\r\n\r\n{}")
    return {
        "interaction-id-CR-then-a-header": lambda: get(bearer, ip, b"x-fapi-interaction-id: a\r" + MARK),
        "interaction-id-LF-then-a-header": lambda: get(bearer, ip, b"x-fapi-interaction-id: a\n" + MARK),
        "interaction-id-NUL": lambda: get(bearer, ip, b"x-fapi-interaction-id: a\x00b"),
        "interaction-id-obs-fold": lambda: get(bearer, ip, b"x-fapi-interaction-id: a", b" " + MARK),
        "customer-ip-NUL": lambda: get(bearer, b"x-fapi-customer-ip-address: 1.2.3.4\x00"),
        "customer-user-agent-control-character": lambda: get(bearer, ip, b"x-customer-user-agent: a\x0bb"),
        "header-name-with-a-space": lambda: get(bearer, ip, b"x fapi: 1"),
        "request-target-of-1MB": lambda: get(bearer, ip, target=ACCOUNTS.encode() + b"?q=" + b"a" * (1 << 20)),
        "interaction-id-percent-encoded-CRLF": lambda: get(b"x-fapi-interaction-id: a%0d%0aSet-Cookie:%20injected=1"),
        "interaction-id-8-bit-bytes": lambda: get(b"x-fapi-interaction-id: \xc3\xa9\xff<x>"),
        "interaction-id-10k-characters": lambda: get(b"x-fapi-interaction-id: " + b"a" * 10_000),
        "authorization-twice-the-same-token": lambda: get(bearer, bearer, ip),
        "authorization-twice-a-second-token": lambda: get(bearer, b"Authorization: Bearer x", ip),
        "authorization-two-tokens-in-one-field": lambda: get(bearer + b", Bearer x", ip),
        "authorization-basic-on-a-resource": lambda: get(b"Authorization: Basic dHBwOnNlY3JldA==", ip),
        "one-header-of-8MB": lambda: get(bearer, ip, b"x-padding: " + b"a" * (8 << 20)),
        "customer-ip-of-1MB": lambda: get(bearer, b"x-fapi-customer-ip-address: " + b"1" * (1 << 20)),
        "100k-header-fields": lambda: get(bearer, ip, *(b"x-h%d: v" % n for n in range(100_000))),
    }[case]()


HEADER_CASES = {
    # case: (status, UK OB ErrorCode, audit reason)
    "interaction-id-CR-then-a-header": (400, None, None),
    "interaction-id-LF-then-a-header": (400, None, None),
    "interaction-id-NUL": (400, None, None),
    "interaction-id-obs-fold": (400, None, None),
    "idempotency-key-CRLF-then-a-header": (400, None, None),
    "customer-ip-NUL": (400, None, None),
    "customer-user-agent-control-character": (400, None, None),
    "header-name-with-a-space": (400, None, None),
    "request-target-of-1MB": ((400, 414), None, None),
    "interaction-id-percent-encoded-CRLF": (401, "UK.OBIE.Header.Missing", "token.missing"),
    "interaction-id-8-bit-bytes": (401, "UK.OBIE.Header.Missing", "token.missing"),
    "interaction-id-10k-characters": (401, "UK.OBIE.Header.Missing", "token.missing"),
    "authorization-twice-the-same-token": (401, "UK.OBIE.Header.Missing", "token.missing"),
    "authorization-twice-a-second-token": (401, "UK.OBIE.Header.Missing", "token.missing"),
    "authorization-two-tokens-in-one-field": (401, "UK.OBIE.Header.Invalid", "token.malformed"),
    "authorization-basic-on-a-resource": (401, "UK.OBIE.Header.Missing", "token.missing"),
    "one-header-of-8MB": ((400, 431), None, None),
    "customer-ip-of-1MB": ((400, 431), None, None),
    "100k-header-fields": ((400, 431), None, None),
}


@pytest.mark.parametrize("case", HEADER_CASES)
def test_headers_an_injected_or_oversized_header_is_refused_and_never_reflected(world, case):
    request = _header_request(world, case)
    # The same request through the proxy-mode gateway, to the echo back-end: nothing of it may reach a back-end.
    seen = world.echo_seen()
    proxied = request.replace(b"\r\nHost: 127.0.0.1\r\n", b"\r\nHost: 127.0.0.1\r\nclient-cert: " +
                              world.demo_cert_header.encode() + b"\r\n", 1).replace(
        world.token["access_token"].encode(), world.proxy_token["access_token"].encode())
    answer, through_proxy = raw_request(world.port, request, world.pki), raw_request(world.proxy.port, proxied,
                                                                                      world.pki)
    status, code, reason = HEADER_CASES[case]
    statuses = status if isinstance(status, tuple) else (status,)
    # Safety first: nothing injected is reflected, nothing is answered with data, nothing forwarded.
    for got in (answer, through_proxy):
        assert MARK.lower() not in got.raw.lower() and b"injected" not in got.raw, got.raw[:400]
        assert got.all("set-cookie") == [], got.headers
        assert got.status < 500, got.raw[:300]
        assert got.status != 200, got.raw[:300]
    if case.startswith("interaction-id-") and answer.header("x-fapi-interaction-id"):
        assert answer.header("x-fapi-interaction-id").encode() not in request  # replaced, not echoed
    assert world.echo_seen() == seen, "a refused call reached the back-end"
    # The standard refusal: status, OBErrorResponse1 with the interaction id, the audit record.
    gap(answer.status in statuses, f"status {answer.status}, expected {statuses}: {answer.raw[:200]!r}")
    iid = assert_ob_refusal(answer, answer.status, code)
    world.audit.refused(iid, answer.status, reason or "request.")
    assert world.echo_seen() == seen, "a refused call reached the back-end"
    world.still_works()


# -- 4. Path traversal and odd encodings -------------------------------------------------------------------------------
# SKIPPED, proven by tests/e2e/test_gateway.py::test_path_parameters_cannot_escape_their_segment: `..%2F..%2Fadmin`
# (404) and `a%3Fb%23c` (kept inside its segment); by tests/e2e/test_enforcement.py::
# test_an_unselected_or_another_customers_account_is_refused: another customer's AccountId written plainly.

A = ACCOUNTS.encode()
PATH_CASES = {
    # case: (raw request target, status on the bank gateway)
    "dot-dot-percent-encoded": (A + b"/%2e%2e", 404),
    "dot-dot-percent-encoded-then-balances": (A + b"/%2e%2e/balances", 404),
    "dot-dot-double-encoded-then-balances": (A + b"/%252e%252e/balances", 403),
    "dot-dot-raw": (A + b"/..", 404),
    "dot-dot-raw-back-to-accounts": (A + b"/../accounts", 404),
    "dot-segment-raw": (b"/open-banking/v3.1/aisp/./accounts", 404),
    "dot-dot-raw-to-another-customers-account": (A + b"/" + SELECTED.encode() + b"/../acc-bob-current/balances",
                                                 404),
    "encoded-slashes-to-another-customers-account": (A + b"/" + SELECTED.encode() +
                                                     b"%2F..%2Facc-bob-current%2Fbalances", 404),
    "encoded-slashes-after-balances": (A + b"/" + SELECTED.encode() + b"/balances%2F..%2F..%2Facc-bob-current"
                                       b"%2Fbalances", 404),
    "dot-dot-above-the-mount": (b"/open-banking/%2e%2e/open-banking/v3.1/aisp/accounts", 404),
    "dot-dot-after-balances": (A + b"/" + SELECTED.encode() + b"/balances/..", 404),
    "double-slash-at-the-start": (b"/" + A, 404),
    "double-slash-inside": (b"/open-banking/v3.1/aisp//accounts", 404),
    "trailing-slash": (A + b"/", 404),
    "upper-case-prefix": (b"/OPEN-BANKING/v3.1/aisp/accounts", 404),
    "backslash-dot-dot-encoded": (A + b"/" + SELECTED.encode() + b"%5C..%5Cacc-bob-current/balances", 403),
    "other-customer-percent-encoded-hyphens": (A + b"/acc%2Dbob%2Dcurrent", 403),
    "other-customer-percent-encoded-letter": (A + b"/%61cc-bob-current/transactions", 403),
    "other-customer-upper-case": (A + b"/ACC-BOB-CURRENT/balances", 403),
    "other-customer-with-NUL": (A + b"/acc-bob-current%00", 403),
    "other-customer-unicode-hyphens": (A + b"/acc%E2%80%90bob%E2%80%90current", 403),
    "other-customer-with-matrix-parameter": (A + b"/acc-bob-current;jsessionid=1", 403),
    "other-customer-after-an-encoded-slash": (A + b"%2Facc-bob-current", 403),
    "selected-account-with-encoded-query": (A + b"/" + SELECTED.encode() + b"%3F/balances", 403),
    "selected-account-with-encoded-fragment": (A + b"/" + SELECTED.encode() + b"%23/balances", 403),
    "invalid-percent-encoding": (A + b"/%ff", 403),
    "raw-non-ascii-byte": (A + b"/\xc3\xa9", 400),
}
_ONE_SEGMENT = re.compile(r"/echo/accounts(/[^/]+)?")


@pytest.mark.parametrize("case", PATH_CASES)
def test_paths_a_traversing_or_oddly_encoded_path_never_reaches_another_resource(world, case):
    target, status = PATH_CASES[case]
    seen = world.echo_seen()
    answer = raw_request(world.port, http_get(target, b"Authorization: Bearer " + world.token["access_token"].encode(),
                                              b"x-fapi-customer-ip-address: 198.51.100.7"), world.pki)
    through_proxy = world.proxy_call(target)
    # Safety first: never another customer's (or an unselected) account from the bank, never a 500.
    assert answer.status < 500 and through_proxy.status < 500, (answer.raw[:300], through_proxy.raw[:300])
    assert not any(other.encode() in answer.body for other in OTHERS), answer.body[:300]
    # What reached the echo back-end: only the routes' own upstream paths, a parameter always one whole segment.
    reached = {path: n for path, n in world.echo_seen().items() if n != seen.get(path)}
    for path in reached:
        assert _ONE_SEGMENT.fullmatch(path) and "/../" not in path + "/" and not path.endswith(("/.", "/..")), reached
    iid = assert_ob_refusal(answer, status, {404: "UK.OBIE.Resource.NotFound", 403: "UK.OBIE.Resource.NotFound",
                                            400: None}[status])
    world.audit.refused(iid, status, {404: "route.not_found", 403: "consent.account_not_selected",
                                      400: "request."}[status])
    world.still_works()


# -- 5. Open redirects -------------------------------------------------------------------------------------------------
# SKIPPED, proven by tests/e2e/test_oauth_refusals.py::
# test_a_pushed_request_with_an_unregistered_redirect_uri_is_refused_as_json: another host
# (https://attacker.example/callback), the registered URI plus a slash, plus a query (?next=x), and none at all;
# ::test_an_authorization_request_that_was_not_pushed_is_refused_with_a_page: a whole authorization request sent to
# the front channel instead of pushed.

PAR_REDIRECTS = {
    "registered-plus-a-path": REDIRECT_URI + "/extra",
    "userinfo-then-another-host": "https://tpp.example.com@evil.example/callback",
    "http-instead-of-https": REDIRECT_URI.replace("https:", "http:"),
    "with-a-fragment": REDIRECT_URI + "#x",
    "host-in-upper-case": "https://TPP.EXAMPLE.COM/callback",
    "path-in-another-case": "https://tpp.example.com/Callback",
    "host-with-a-trailing-dot": "https://tpp.example.com./callback",
    "explicit-default-port": "https://tpp.example.com:443/callback",
    "percent-encoded-path": "https://tpp.example.com/%63allback",
    "dot-dot-in-the-path": "https://tpp.example.com/callback/../callback",
    "empty-query": REDIRECT_URI + "?",
    "leading-space": " " + REDIRECT_URI,
    "scheme-relative": "//evil.example/callback",
    "javascript-scheme": "javascript:alert(1)//" + REDIRECT_URI,
    "registered-host-as-a-subdomain": "https://tpp.example.com.evil.example/callback",
    "registered-uri-in-the-query-of-another": "https://evil.example/?" + REDIRECT_URI,
    "backslash-userinfo": "https://tpp.example.com\\@evil.example/callback",
    "trailing-newline": REDIRECT_URI + "\n",
    "internationalised-look-alike-host": "https://tpp.exámple.com/callback",
    "punycode-look-alike-host": "https://tpp.xn--exmple-qta.com/callback",
}
AUTHORIZE_CASES = ("authorize-extra-redirect-uri-parameter", "authorize-another-clients-request-uri",
                   "authorize-unknown-request-uri-with-redirect-uri", "authorize-client-id-twice",
                   "authorize-extra-response-mode", "authorize-parameter-with-a-quote-twice",
                   "authorize-consent-revoked-after-the-push")


def push(tpp: Tpp, consent_id: str, redirect_uri: str) -> httpx.Response:
    """A pushed authorization request as Tpp.push makes it (tls_client_auth), but form-encoded by httpx, which
    sends any text (Authlib's client refuses non-ASCII)."""
    verifier = secrets.token_urlsafe(48)
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    return tpp.http.post(tpp.metadata["pushed_authorization_request_endpoint"], data={
        "client_id": tpp.client_id, "response_type": "code", "redirect_uri": redirect_uri, "scope": "openid accounts",
        "state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16), "code_challenge": challenge,
        "code_challenge_method": "S256", "consent_id": consent_id})


def _authorize(world: World, browser: Browser, case: str, request_uri: str, consent_id: str) -> httpx.Response:
    path = world.gw.base + "/oauth2/authorize"
    if case == "authorize-extra-redirect-uri-parameter":
        return browser.http.get(path, params={"client_id": "tpp-demo", "request_uri": request_uri,
                                              "redirect_uri": "https://evil.example/cb"})
    if case == "authorize-another-clients-request-uri":
        return browser.http.get(path, params={"client_id": "tpp-other", "request_uri": request_uri})
    if case == "authorize-unknown-request-uri-with-redirect-uri":
        return browser.http.get(path, params={"client_id": "tpp-demo", "redirect_uri": "https://evil.example/cb",
                                              "request_uri": "urn:ietf:params:oauth:request_uri:forged"})
    if case == "authorize-client-id-twice":
        return browser.http.get(f"{path}?client_id=tpp-demo&client_id=tpp-other&request_uri={quote(request_uri)}")
    if case == "authorize-extra-response-mode":
        return browser.http.get(path, params={"client_id": "tpp-demo", "request_uri": request_uri,
                                              "response_mode": "form_post"})
    if case == "authorize-parameter-with-a-quote-twice":
        return browser.http.get(f"{path}?client_id=tpp-demo&request_uri={quote(request_uri)}&%22=1&%22=2")
    if case == "authorize-consent-revoked-after-the-push":
        cc = world.tpp.client_credentials()
        deleted = world.tpp.http.delete(f"{world.gw.base}{CONSENTS}/{consent_id}",
                                        headers={"Authorization": f"Bearer {cc['access_token']}"})
        assert deleted.status_code == 204, deleted.text
        return browser.open("tpp-demo", request_uri)
    raise AssertionError(case)


AUTHORIZE_EXPECTED = {  # case: (status, audit reason)
    "authorize-extra-redirect-uri-parameter": (400, "oauth.invalid_request"),
    "authorize-another-clients-request-uri": (400, "oauth.invalid_request_uri"),
    "authorize-unknown-request-uri-with-redirect-uri": (400, "oauth.invalid_request"),
    "authorize-client-id-twice": (400, "oauth.invalid_request"),
    "authorize-extra-response-mode": (400, "oauth.invalid_request"),
    "authorize-parameter-with-a-quote-twice": (400, "oauth.invalid_request"),
    "authorize-consent-revoked-after-the-push": (302, "oauth.invalid_request"),
}


@pytest.mark.parametrize("case", [
    *(pytest.param(case, id="par-" + case) for case in PAR_REDIRECTS), *AUTHORIZE_CASES])
def test_redirects_an_unregistered_redirect_uri_is_never_redirected_to(world, case):
    tpp = world.tpp
    consent_id = tpp.create_consent()["ConsentId"]
    if case in PAR_REDIRECTS:
        answer = Answer.of(push(tpp, consent_id, PAR_REDIRECTS[case]))
        assert answer.status < 500, answer.text
        iid = assert_oauth_refusal(answer, 400, "invalid_request")
        world.audit.refused(iid, 400, "oauth.invalid_request")
        # Nothing changed: the consent still awaits its authorisation, and a proper push for it works.
        assert world.consent_status(consent_id) == "AwaitingAuthorisation"
        accepted = push(tpp, consent_id, REDIRECT_URI)
        assert accepted.status_code == 201, accepted.text
        return
    pushed_response, pushed = tpp.push(consent_id)
    assert pushed_response.status_code == 201, pushed_response.text
    browser = Browser(world.gw.base, world.pki)
    try:
        answer = Answer.of(_authorize(world, browser, case, pushed.request_uri, consent_id))
        status, reason = AUTHORIZE_EXPECTED[case]
        location = answer.header("location")
        # Safety: never a redirect anywhere but the registered redirect URI, and never a code.
        assert location is None or location.startswith(REDIRECT_URI + "?"), location
        assert "code=" not in (location or "")
        assert answer.status < 500, answer.text
        if status == 302:
            # The redirect URI was known and trusted: the error goes back to it, with state and iss (RFC 9207).
            gap(answer.status in (302, 303), answer.status)
            params = redirect_params(httpx.Response(answer.status, headers={"location": location}))
            assert params["error"] == "invalid_request" and params["state"] == pushed.state
            assert params["iss"] == tpp.issuer
            iid = interaction_id(answer)
        else:
            iid = assert_page_refusal(answer, status)
            assert answer.all("set-cookie") == []  # no login session was opened
        world.audit.refused(iid, answer.status, reason)
        if case == "authorize-consent-revoked-after-the-push":
            # Nothing changed: the consent stays deleted (no code was issued for it: see the Location above).
            cc = tpp.client_credentials()
            gone = tpp.http.get(f"{world.gw.base}{CONSENTS}/{consent_id}",
                                headers={"Authorization": f"Bearer {cc['access_token']}"})
            assert gone.status_code == 400 and gone.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.NotFound"
            return
        # Nothing changed: the consent awaits its authorisation, and the pushed request still opens the login page.
        assert world.consent_status(consent_id) == "AwaitingAuthorisation"
        login = browser.open("tpp-demo", pushed.request_uri)
        assert login.status_code == 200 and "username" in login.text, login.text
    finally:
        browser.close()


# -- 6. CSRF -----------------------------------------------------------------------------------------------------------
# SKIPPED, proven by tests/e2e/test_consent_pages.py::test_a_decision_without_the_sessions_csrf_token_is_refused
# [None, forged] and tests/e2e/test_dashboard.py::test_a_withdrawal_without_the_sessions_csrf_token_changes_nothing
# [None, forged], ::test_the_login_form_needs_its_csrf_token_and_a_wrong_password_is_refused: no token, a made-up one.

def _at_consent_page(world: World, browser: Browser, customer: str = "alice") -> tuple[str, httpx.Response]:
    """A fresh consent, pushed, its link opened and the customer logged in: (consent id, the consent page)."""
    consent_id = world.tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    response, pushed = world.tpp.push(consent_id)
    assert response.status_code == 201, response.text
    page = browser.login(browser.open("tpp-demo", pushed.request_uri), customer)
    assert page.status_code == 200, page.text
    return consent_id, page


def _dashboard(browser: Browser, customer: str = "alice", seen: list | None = None) -> httpx.Response:
    """The customer logged in to the dashboard: its page; `seen` gets the login form's (pre-login) CSRF token."""
    login = browser.http.get(browser.base + "/login")
    if seen is not None:
        seen.append(only_form(login.text).hidden["csrf_token"])
    answer = browser.submit(login, {"username": customer, "password": f"{customer}-pass"})
    assert answer.status_code == 303, answer.text
    return browser.http.get(browser.base + "/consents")


@pytest.fixture(scope="module")
def withdrawable(world):
    """A consent alice authorised, for the dashboard cases (each must leave it working)."""
    return world.tpp.consent_token(["ReadAccountsBasic"], accounts=[SELECTED])


def _token_of(page: httpx.Response, action: str | None = None) -> str:
    found = [f for f in forms(page.text) if action is None or f.action == action]
    return found[0].hidden["csrf_token"]


CSRF_CASES = {  # case: (status, audit reason)
    "consent-form-token-of-another-session": (403, "web.csrf_invalid"),
    "consent-form-stale-token-of-the-login-page": (403, "web.csrf_invalid"),
    "consent-form-token-twice": (403, "web.csrf_invalid"),
    "consent-form-token-of-the-dashboard": (403, "web.csrf_invalid"),
    "consent-form-right-token-without-the-cookie": (400, "web.session_missing"),
    "login-form-token-of-another-session": (403, "web.csrf_invalid"),
    "revoke-token-of-another-customers-session": (403, "web.csrf_invalid"),
    "revoke-stale-token-of-the-login-form": (403, "web.csrf_invalid"),
    "revoke-token-twice": (403, "web.csrf_invalid"),
    "revoke-token-of-the-consent-page": (403, "web.csrf_invalid"),
    "revoke-right-token-without-the-cookie": (403, "web.session_missing"),
}


@pytest.mark.parametrize("case", CSRF_CASES)
def test_csrf_a_form_without_its_own_sessions_token_changes_nothing(world, withdrawable, case):
    mine, theirs = Browser(world.gw.base, world.pki), Browser(world.gw.base, world.pki)
    try:
        if case.startswith(("consent-", "login-")):
            if case == "login-form-token-of-another-session":
                consent_id = world.tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
                _, pushed = world.tpp.push(consent_id)
                login = mine.open("tpp-demo", pushed.request_uri)
                _, other_page = _at_consent_page(world, theirs)
                fields = {**only_form(login.text).hidden, "csrf_token": _token_of(other_page),
                          "username": "alice", "password": "alice-pass"}
                answer = mine.http.post(world.gw.base + only_form(login.text).action, data=fields)
            else:
                consent_id = world.tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
                _, pushed = world.tpp.push(consent_id)
                login = mine.open("tpp-demo", pushed.request_uri)
                stale = _token_of(login)
                page = mine.login(login, "alice")
                own = _token_of(page)
                token = {
                    "consent-form-token-of-another-session": lambda: [_token_of(_at_consent_page(world, theirs)[1])],
                    "consent-form-stale-token-of-the-login-page": lambda: [stale],
                    "consent-form-token-twice": lambda: [own, "x" + own],
                    "consent-form-token-of-the-dashboard": lambda: [_token_of(_dashboard(theirs))],
                    "consent-form-right-token-without-the-cookie": lambda: [own],
                }[case]()
                fields = {"csrf_token": token, "account_ids": SELECTED, "decision": "approve"}
                if case == "consent-form-right-token-without-the-cookie":
                    with httpx.Client(verify=client_context(world.pki / "ca.pem"), timeout=15) as cookieless:
                        answer = cookieless.post(world.gw.base + only_form(page.text).action, data=fields)
                else:
                    answer = mine.http.post(world.gw.base + only_form(page.text).action, data=fields)
            status, reason = CSRF_CASES[case]
            iid = assert_page_refusal(Answer.of(answer), status)
            world.audit.refused(iid, status, reason)
            assert world.consent_status(consent_id) == "AwaitingAuthorisation"
            return
        consent_id = withdrawable["consent_id"]
        action = f"/consents/{consent_id}/revoke"
        login_tokens: list[str] = []
        own = _token_of(_dashboard(mine, seen=login_tokens), action)
        token = {
            "revoke-token-of-another-customers-session": lambda: [_token_of(_dashboard(theirs, "bob"))],
            "revoke-stale-token-of-the-login-form": lambda: login_tokens,
            "revoke-token-twice": lambda: [own, own],
            "revoke-token-of-the-consent-page": lambda: [_token_of(_at_consent_page(world, theirs)[1])],
            "revoke-right-token-without-the-cookie": lambda: [own],
        }[case]()
        if case == "revoke-right-token-without-the-cookie":
            with httpx.Client(verify=client_context(world.pki / "ca.pem"), timeout=15) as cookieless:
                answer = cookieless.post(world.gw.base + action, data={"csrf_token": token})
        else:
            answer = mine.http.post(world.gw.base + action, data={"csrf_token": token})
        status, reason = CSRF_CASES[case]
        iid = assert_page_refusal(Answer.of(answer), status)
        world.audit.refused(iid, status, reason)
        assert world.tpp.get(ACCOUNTS, withdrawable).status_code == 200  # still usable: not withdrawn
    finally:
        mine.close()
        theirs.close()


# -- 7. Session fixation -----------------------------------------------------------------------------------------------
# SKIPPED, proven by tests/e2e/test_consent_pages.py::
# test_the_pages_name_the_tpp_explain_the_permissions_and_protect_the_session: the login cookie's value changes at
# login (the cases here go on to show what the old value is then worth).

FIXATION_CASES = {  # case: (status, audit reason)
    "authorize-planted-cookie-cannot-decide-after-the-victims-login": (400, "web.session_missing"),
    "authorize-planted-cookie-cannot-log-in-again": (400, "web.session_missing"),
    "authorize-login-stage-cookie-cannot-decide": (400, "web.session_missing"),
    "authorize-cookie-of-a-finished-decision-cannot-decide-again": (400, "web.session_missing"),
    "dashboard-planted-cookie-cannot-withdraw-after-the-victims-login": (403, "web.session_missing"),
    "dashboard-cookie-of-a-logged-out-session-cannot-withdraw": (403, "web.session_missing"),
}
LOGIN_COOKIE, DASHBOARD_COOKIE = "__Host-obgw-login", "__Host-obgw-dashboard"


@pytest.mark.parametrize("case", FIXATION_CASES)
def test_sessions_a_planted_or_used_up_session_cannot_act_for_the_customer(world, withdrawable, case):
    attacker, victim = Browser(world.gw.base, world.pki), Browser(world.gw.base, world.pki)
    try:
        if case.startswith("authorize-"):
            consent_id = world.tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
            _, pushed = world.tpp.push(consent_id)
            login = attacker.open("tpp-demo", pushed.request_uri)  # the attacker opens the link: session S
            planted = attacker.http.cookies.get(LOGIN_COOKIE)
            login_csrf = _token_of(login)
            decision = {"csrf_token": login_csrf, "account_ids": SELECTED, "decision": "approve"}
            if case == "authorize-login-stage-cookie-cannot-decide":
                answer = attacker.http.post(world.gw.base + "/oauth2/authorize/decision", data=decision)
            else:
                # S is planted in the victim's browser, who logs in with the page the attacker got.
                victim.http.cookies.set(LOGIN_COOKIE, planted, domain="127.0.0.1", path="/")
                page = victim.login(login, "alice")
                assert page.status_code == 200, page.text
                assert victim.http.cookies.get(LOGIN_COOKIE) != planted  # a new session id at login
                if case == "authorize-planted-cookie-cannot-decide-after-the-victims-login":
                    answer = attacker.http.post(world.gw.base + "/oauth2/authorize/decision", data=decision)
                elif case == "authorize-planted-cookie-cannot-log-in-again":
                    answer = attacker.http.post(world.gw.base + "/oauth2/authorize/login", data={
                        "csrf_token": login_csrf, "username": "alice", "password": "alice-pass"})
                else:  # the victim approves; their cookie, copied, cannot approve again
                    copied = victim.http.cookies.get(LOGIN_COOKIE)
                    approved = victim.submit(page, {"account_ids": SELECTED, "decision": "approve"})
                    assert approved.status_code in (302, 303), approved.text
                    attacker.http.cookies.clear()
                    attacker.http.cookies.set(LOGIN_COOKIE, copied, domain="127.0.0.1", path="/")
                    answer = attacker.http.post(world.gw.base + "/oauth2/authorize/decision", data={
                        "csrf_token": _token_of(page), "account_ids": SELECTED, "decision": "approve"})
            status, reason = FIXATION_CASES[case]
            iid = assert_page_refusal(Answer.of(answer), status)
            world.audit.refused(iid, status, reason)
            expected = "Authorised" if case == "authorize-cookie-of-a-finished-decision-cannot-decide-again" else \
                "AwaitingAuthorisation"
            assert world.consent_status(consent_id) == expected
            return
        consent_id = withdrawable["consent_id"]
        action = f"/consents/{consent_id}/revoke"
        if case == "dashboard-planted-cookie-cannot-withdraw-after-the-victims-login":
            login = attacker.http.get(world.gw.base + "/login")
            planted, csrf = attacker.http.cookies.get(DASHBOARD_COOKIE), _token_of(login)
            for name, value in attacker.http.cookies.items():  # whatever the login form set before any login
                victim.http.cookies.set(name, value, domain="127.0.0.1", path="/")
            answer = victim.submit(login, {"username": "alice", "password": "alice-pass"})
            assert answer.status_code == 303 and victim.http.cookies.get(DASHBOARD_COOKIE) != planted
            # With the planted value the attacker is not logged in, and cannot withdraw.
            assert attacker.http.get(world.gw.base + "/consents").headers.get("location") == "/login"
            answer = attacker.http.post(world.gw.base + action, data={"csrf_token": csrf})
        else:
            page = _dashboard(victim)
            copied, csrf = victim.http.cookies.get(DASHBOARD_COOKIE), _token_of(page, action)
            logout = [f for f in forms(page.text) if f.action == "/logout"]
            assert logout, "the dashboard offers no logout form"
            assert victim.http.post(world.gw.base + "/logout", data=logout[0].hidden).status_code == 303
            attacker.http.cookies.set(DASHBOARD_COOKIE, copied, domain="127.0.0.1", path="/")
            answer = attacker.http.post(world.gw.base + action, data={"csrf_token": csrf})
        status, reason = FIXATION_CASES[case]
        iid = assert_page_refusal(Answer.of(answer), status)
        world.audit.refused(iid, status, reason)
        assert world.tpp.get(ACCOUNTS, withdrawable).status_code == 200  # not withdrawn
    finally:
        attacker.close()
        victim.close()


# -- 8. Client-certificate header spoofing (RFC 9440 Client-Cert) ------------------------------------------------------
# SKIPPED, proven by tests/e2e/test_gateway.py: with OBGW_TRUSTED_PROXIES set to another address than the caller's,
# the header is ignored (test_the_header_is_ignored_from_anyone_but_a_trusted_proxy); from the trusted proxy, a
# garbled value `:!!:` and another TPP's certificate with this TPP's token
# (test_a_trusted_proxy_forwards_the_client_certificate), a certificate of another CA
# (test_a_trusted_proxy_cannot_forward_a_certificate_from_an_unknown_ca); the verifier's unit cases
# (tests/unit/pipeline/test_identity.py) are repeated here only where the HTTP answer and the audit are the point.

def _issued_header(issued) -> str:
    return ":" + base64.b64encode(issued.cert.public_bytes(Encoding.DER)).decode() + ":"


def _cert_header(world: World, case: str) -> str:
    der = x509.load_pem_x509_certificate((world.pki / "tpp-demo.pem").read_bytes()).public_bytes(Encoding.DER)
    now = datetime.now(UTC)
    ca = pkimod.load_ca(world.pki)
    return {
        "proxy-forged-by-a-ca-of-the-same-name": lambda: _issued_header(pkimod.issue_client_cert(pkimod.make_ca(),
                                                                                                 "tpp-demo")),
        "proxy-the-ca-certificate-itself": lambda: rfc9440((world.pki / "ca.pem").read_bytes()),
        "proxy-the-servers-certificate": lambda: rfc9440((world.pki / "server.pem").read_bytes()),
        "proxy-expired-from-the-trusted-ca": lambda: _issued_header(pkimod.issue_client_cert(
            ca, "tpp-demo", not_before=now - timedelta(days=10), not_after=now - timedelta(days=1))),
        "proxy-not-yet-valid-from-the-trusted-ca": lambda: _issued_header(pkimod.issue_client_cert(
            ca, "tpp-demo", not_before=now + timedelta(days=1), not_after=now + timedelta(days=10))),
        "proxy-truncated-der": lambda: ":" + base64.b64encode(der[:-16]).decode() + ":",
        "proxy-der-with-trailing-bytes": lambda: ":" + base64.b64encode(der + b"\x00\x01").decode() + ":",
        "proxy-pem-instead-of-der": lambda: ":" + base64.b64encode((world.pki / "tpp-demo.pem").read_bytes()).decode()
                                            + ":",
        "proxy-two-certificates-in-one-field": lambda: world.demo_cert_header + ", " + world.demo_cert_header,
        "proxy-empty-byte-sequence": lambda: "::",
        "proxy-url-safe-base64": lambda: ":" + base64.urlsafe_b64encode(der).decode() + ":",
        "proxy-no-colons": lambda: base64.b64encode(der).decode(),
        "proxy-1MB-value": lambda: ":" + "A" * (1 << 20) + ":",
    }[case]()


CERT_CASES = {  # case: (status, UK OB ErrorCode, audit reason)
    "unset-header-for-another-tpp-over-a-real-certificate": (401, "UK.OBIE.Header.Invalid", "token.cnf_mismatch"),
    "unset-header-without-a-tls-certificate": (401, "UK.OBIE.Field.Missing", "identity.no_certificate"),
    "unset-chain-header-without-a-tls-certificate": (401, "UK.OBIE.Field.Missing", "identity.no_certificate"),
    "unset-header-at-the-token-endpoint": (401, "invalid_client", "oauth.invalid_client"),
    "proxy-no-header-only-the-proxys-own-tls-certificate": (401, "UK.OBIE.Field.Missing", "identity.no_certificate"),
    "proxy-forged-by-a-ca-of-the-same-name": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-the-ca-certificate-itself": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-the-servers-certificate": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-expired-from-the-trusted-ca": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-not-yet-valid-from-the-trusted-ca": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-truncated-der": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-der-with-trailing-bytes": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-pem-instead-of-der": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-two-certificates-in-one-field": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-empty-byte-sequence": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-url-safe-base64": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-no-colons": (401, "UK.OBIE.Field.Invalid", "identity.bad_certificate"),
    "proxy-1MB-value": (431, "UK.OBIE.Header.Invalid", "request.headers_too_large"),  # over the header limit
}


def _thumbprint(pem: Path) -> str:
    return pkimod.thumbprint_sha256(x509.load_pem_x509_certificate(pem.read_bytes()))


@pytest.mark.parametrize("case", CERT_CASES)
def test_certificates_a_spoofed_client_cert_header_is_ignored_or_refused(world, case):
    status, code, reason = CERT_CASES[case]
    seen = world.echo_seen()
    other_header = rfc9440((world.pki / "tpp-other.pem").read_bytes())
    if case == "unset-header-for-another-tpp-over-a-real-certificate":
        # tpp-demo's TLS certificate, tpp-other's token and a header claiming tpp-other's certificate.
        answer = world.accounts_call(world.other_token["access_token"], {"client-cert": other_header})
    elif case.startswith("unset-") and case != "unset-header-at-the-token-endpoint":
        name = "client-cert-chain" if "chain" in case else "client-cert"
        with httpx.Client(verify=client_context(world.pki / "ca.pem"), timeout=15) as anonymous:
            answer = Answer.of(anonymous.get(world.gw.base + ACCOUNTS, headers={
                "Authorization": f"Bearer {world.token['access_token']}", name: world.demo_cert_header,
                **CUSTOMER_PRESENT}))
    elif case == "unset-header-at-the-token-endpoint":
        with httpx.Client(verify=client_context(world.pki / "ca.pem"), timeout=15) as anonymous:
            answer = Answer.of(anonymous.post(world.tpp.metadata["token_endpoint"], headers={
                "client-cert": world.demo_cert_header}, data={"grant_type": "client_credentials", "scope": "accounts",
                                                              "client_id": "tpp-demo"}))
    elif case == "proxy-no-header-only-the-proxys-own-tls-certificate":
        answer = raw_request(world.proxy.port, http_get(
            ACCOUNTS.encode(), b"Authorization: Bearer " + world.proxy_token["access_token"].encode(),
            b"x-fapi-customer-ip-address: 198.51.100.7"), world.pki)
    else:
        answer = world.proxy_call(ACCOUNTS.encode(), cert_header=_cert_header(world, case))
    if code.startswith("UK."):
        iid = assert_ob_refusal(answer, status, code)
    else:
        iid = assert_oauth_refusal(answer, status, code)
    audit = world.proxy_audit if case.startswith("proxy-") else world.audit
    record = audit.refused(iid, status, reason)
    if case == "unset-header-for-another-tpp-over-a-real-certificate":
        # The identity is the TLS peer's certificate; the header was dropped, not believed.
        assert record["cert_thumbprint"] == _thumbprint(world.pki / "tpp-demo.pem"), record
    else:  # no identity was taken from the header (nor, behind the proxy, from the proxy's own TLS certificate)
        assert record.get("cert_thumbprint") is None, record
    # Nothing changed: nothing reached the back-end, and the real certificate through the proxy still works.
    assert world.echo_seen() == seen
    assert world.proxy_call(ACCOUNTS.encode()).status == 200
    world.still_works()
