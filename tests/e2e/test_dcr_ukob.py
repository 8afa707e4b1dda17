"""UK OB dynamic client registration: the request a JWT the TPP signed (PyJWT, as a TPP would), and RFC 7592
management with the registration access token, against `obgw serve` over mutual TLS with a real Redis."""
from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAPSSAlgorithm
from support.gateway import bank_gateway, client_context
from support.tpp import Tpp

from gateway import pki as pkimod

pytestmark = pytest.mark.e2e

CALLBACKS = ["https://ukob.example/cb", "https://ukob.example/other-cb"]
JWT = {"Content-Type": "application/jwt"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank, register=False)
    yield gw
    assert gw.stop() == 0


class Software:
    """A TPP new to the gateway, as the UK OB Directory knows it: a transport certificate whose CN is its software_id,
    and a signing key (ES256 or PS256) its software statement publishes in software_jwks."""

    def __init__(self, gateway, pki: Path, folder: Path, alg: str = "ES256") -> None:
        self.gateway, self.pki, self.alg = gateway, pki, alg
        self.software_id = "ukob-" + secrets.token_hex(4)
        pkimod.issue_client_cert(pkimod.load_ca(pki), self.software_id).write(folder / "tpp.pem", folder / "tpp.key")
        self.http = httpx.Client(verify=client_context(pki / "ca.pem", folder / "tpp.pem", folder / "tpp.key"),
                                 timeout=15)
        self.key = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else \
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = self.software_id + "-signing"
        self.issuer = self.http.get(gateway.base + "/.well-known/openid-configuration").json()["issuer"]

    def public_jwk(self) -> dict:
        family = ECAlgorithm if self.alg == "ES256" else RSAPSSAlgorithm
        return {**json.loads(family.to_jwk(self.key.public_key())), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def statement(self, **claims) -> str:
        """Its software statement, minted now by the dev directory; a claim given as None is left out."""
        directory = json.loads((self.pki / "directory.json").read_text())
        body = {"iss": directory["iss"], "iat": int(time.time()), "jti": str(uuid.uuid4()),
                "software_id": self.software_id, "software_client_name": "UK OB Budgeting", "software_roles": ["AISP"],
                "software_redirect_uris": CALLBACKS, "software_jwks": {"keys": [self.public_jwk()]}, **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None},
                          ECAlgorithm.from_jwk(json.dumps(directory["private_jwk"])), "ES256",
                          headers={"kid": directory["private_jwk"]["kid"]})

    def request(self, *, key=None, kid: str | None = None, **claims) -> str:
        """A UK OB DCR request (OBClientRegistrationRequest1 claims) signed with its key, valid for 5 minutes; a
        claim given as None is left out."""
        now = int(time.time())
        body = {"iss": self.software_id, "aud": self.issuer, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()),
                "software_statement": self.statement(), "software_id": self.software_id, "redirect_uris": CALLBACKS,
                "token_endpoint_auth_method": "tls_client_auth", "grant_types": ["authorization_code",
                                                                                 "client_credentials"],
                "response_types": ["code"], "scope": "openid accounts", "application_type": "web",
                "id_token_signed_response_alg": "ES256", "request_object_signing_alg": self.alg,
                "tls_client_auth_subject_dn": f"O=obgw demo TPP,CN={self.software_id}", **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, key or self.key, self.alg,
                          headers={"kid": kid or self.kid, "typ": "JWT"})

    def register(self, body: str | None = None) -> httpx.Response:
        return self.http.post(self.gateway.base + "/oauth2/register", content=body or self.request(), headers=JWT)

    def created(self) -> dict:
        answer = self.register()
        assert answer.status_code == 201, answer.text
        return answer.json()

    def manage(self, method: str, uri: str, token: str | None, **kwargs) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        return self.http.request(method, uri, headers=headers, **kwargs)

    def client_credentials(self, client_id: str) -> httpx.Response:
        return self.http.post(self.gateway.base + "/oauth2/token", data={
            "grant_type": "client_credentials", "scope": "accounts", "client_id": client_id})

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def software(gateway, pki, tmp_path):
    made: list[Software] = []

    def make(alg: str = "ES256") -> Software:
        folder = tmp_path / str(len(made))
        folder.mkdir()
        made.append(Software(gateway, pki, folder, alg))
        return made[-1]
    yield make
    for one in made:
        one.close()


@pytest.mark.parametrize("form", ["UK OB JWT signed ES256", "UK OB JWT signed PS256", "RFC 7591 JSON"])
def test_a_client_registers_then_reads_updates_and_deletes_itself_with_its_registration_access_token(software,
                                                                                                    form):
    tpp = software("PS256" if "PS256" in form else "ES256")
    if form.startswith("UK OB"):
        answer = tpp.register()
    else:
        answer = tpp.http.post(tpp.gateway.base + "/oauth2/register", json={
            "software_statement": tpp.statement(), "token_endpoint_auth_method": "tls_client_auth"})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    client_id, token, uri = created["client_id"], created["registration_access_token"], \
        created["registration_client_uri"]
    assert uri == f"{tpp.issuer}/oauth2/register/{client_id}" and len(token) >= 43
    assert created["redirect_uris"] == CALLBACKS and created["token_endpoint_auth_method"] == "tls_client_auth"
    assert created["software_id"] == tpp.software_id and "client_secret" not in created
    assert tpp.client_credentials(client_id).status_code == 200  # a working client

    read = tpp.manage("GET", uri, token)
    assert read.status_code == 200, read.text
    assert read.json()["client_id"] == client_id and read.json()["registration_access_token"] == token
    assert read.headers["cache-control"] == "no-store"

    # UK OB PUT: a new signed request and statement, narrowing the redirect URIs and changing the method.
    narrowed = tpp.manage("PUT", uri, token, headers=JWT, content=tpp.request(
        redirect_uris=CALLBACKS[:1], token_endpoint_auth_method="private_key_jwt"))
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["redirect_uris"] == CALLBACKS[:1]
    assert narrowed.json()["token_endpoint_auth_method"] == "private_key_jwt"
    assert tpp.client_credentials(client_id).status_code == 401  # tls_client_auth is no longer its method
    # RFC 7592 PUT: JSON without a statement, judged against what the registering statement allowed.
    widened = tpp.manage("PUT", uri, token, json={"client_id": client_id, "redirect_uris": CALLBACKS,
                                                   "token_endpoint_auth_method": "tls_client_auth"})
    assert widened.status_code == 200, widened.text
    assert tpp.manage("GET", uri, token).json()["redirect_uris"] == CALLBACKS
    assert tpp.client_credentials(client_id).status_code == 200

    deleted = tpp.manage("DELETE", uri, token)
    assert deleted.status_code == 204, deleted.text
    assert tpp.manage("GET", uri, token).status_code == 401
    gone = tpp.client_credentials(client_id)
    assert gone.status_code == 401 and gone.json()["error"] == "invalid_client"


def _unsigned(tpp: Software) -> str:
    now = int(time.time())
    return jwt.encode({"iss": tpp.software_id, "aud": tpp.issuer, "iat": now, "exp": now + 300,
                       "jti": str(uuid.uuid4()), "software_statement": tpp.statement(),
                       "token_endpoint_auth_method": "tls_client_auth"}, None, algorithm="none")


BAD_REQUESTS = {
    "unsigned (alg none)": lambda tpp: _unsigned(tpp),
    "signed by a key not in the statement": lambda tpp: tpp.request(key=ec.generate_private_key(ec.SECP256R1())),
    "a kid the statement does not hold": lambda tpp: tpp.request(kid="someone-elses-key"),
    "wrong aud": lambda tpp: tpp.request(aud="https://another-bank.example"),
    "aud as a list": lambda tpp: tpp.request(aud=[tpp.issuer]),
    "expired": lambda tpp: tpp.request(iat=int(time.time()) - 600, exp=int(time.time()) - 120),
    "iat too long ago": lambda tpp: tpp.request(iat=int(time.time()) - 900),
    "iss not the software_id": lambda tpp: tpp.request(iss="another-software"),
    "no jti": lambda tpp: tpp.request(jti=None),
    "redirect_uri outside the statement": lambda tpp: tpp.request(redirect_uris=["https://evil.example/cb"]),
    "client secret method": lambda tpp: tpp.request(token_endpoint_auth_method="client_secret_basic"),
    "id_token algorithm the gateway does not sign with": lambda tpp: tpp.request(id_token_signed_response_alg="RS256"),
    "scope beyond the statement's roles": lambda tpp: tpp.request(scope="openid accounts payments"),
    "keys beside the statement": lambda tpp: tpp.request(jwks={"keys": [tpp.public_jwk()]}),
    "dpop_bound_access_tokens not a boolean": lambda tpp: tpp.request(dpop_bound_access_tokens="yes"),
    "statement not signed by the directory": lambda tpp: tpp.request(software_statement=jwt.encode(
        {"iss": "rogue", "iat": int(time.time()), "jti": "1", "software_id": tpp.software_id},
        ec.generate_private_key(ec.SECP256R1()), "ES256", headers={"kid": "rogue-directory"})),
    "statement of another software": lambda tpp: tpp.request(
        iss="tpp-demo", software_id="tpp-demo", software_statement=tpp.statement(software_id="tpp-demo")),
}
ERRORS = {"statement not signed by the directory": "unapproved_software_statement",
          "statement of another software": "invalid_software_statement"}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_a_bad_signed_registration_is_refused_with_the_rfc_error_and_registers_nothing(gateway, software, case):
    tpp = software()
    before = gateway.cli("clients", "list").stdout
    refused = tpp.register(BAD_REQUESTS[case](tpp))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == ERRORS.get(case, "invalid_client_metadata"), refused.text
    assert gateway.cli("clients", "list").stdout == before
    [record] = [r for r in gateway.audit() if r["interaction_id"] == refused.headers["x-fapi-interaction-id"]]
    assert record["reason"] == f"oauth.{refused.json()['error']}" and record["decision"] == "refuse"


def test_a_signed_request_registers_once_and_a_refused_one_uses_nothing_up(software):
    tpp = software()
    statement, jti = tpp.statement(), str(uuid.uuid4())
    refused = tpp.register(tpp.request(software_statement=statement, jti=jti, redirect_uris=["https://x.example/"]))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client_metadata"
    good = tpp.request(software_statement=statement, jti=jti)
    assert tpp.register(good).status_code == 201  # the refusal used neither the statement nor the jti
    replayed = tpp.register(good)
    assert replayed.status_code == 400 and "used already" in replayed.json()["error_description"], replayed.text
    same_jti = tpp.register(tpp.request(jti=jti))  # a fresh statement does not make the request's jti new
    assert same_jti.status_code == 400 and same_jti.json()["error"] == "invalid_client_metadata", same_jti.text
    assert "registration request was used already" in same_jti.json()["error_description"]


def test_management_needs_the_clients_own_registration_access_token_over_its_own_certificate(software):
    alice, bob = software(), software()
    mine, theirs = alice.created(), bob.created()
    uri, token = mine["registration_client_uri"], mine["registration_access_token"]
    unknown_uri = uri.rsplit("/", 1)[0] + "/no-such-client"
    attempts = {
        "no token": alice.manage("GET", uri, None),
        "a made-up token": alice.manage("GET", uri, secrets.token_urlsafe(32)),
        "another client's token": alice.manage("GET", uri, theirs["registration_access_token"]),
        "another client's token, its certificate": bob.manage("GET", uri, theirs["registration_access_token"]),
        "the right token over another certificate": bob.manage("GET", uri, token),
        "the right token for an unknown client": alice.manage("GET", unknown_uri, token),
        "PUT with another client's token": alice.manage("PUT", uri, theirs["registration_access_token"],
                                                        json={"client_id": mine["client_id"],
                                                              "redirect_uris": CALLBACKS[1:],
                                                              "token_endpoint_auth_method": "tls_client_auth"}),
        "DELETE with another client's token": alice.manage("DELETE", uri, theirs["registration_access_token"]),
    }
    for name, answer in attempts.items():
        assert answer.status_code == 401, (name, answer.text)
        assert answer.json()["error"] in ("invalid_token", "invalid_client"), (name, answer.text)
    made_up = attempts["a made-up token"]
    assert made_up.json()["error"] == "invalid_token" and made_up.headers["www-authenticate"].startswith("Bearer ")
    still = alice.manage("GET", uri, token)
    assert still.status_code == 200 and still.json()["redirect_uris"] == CALLBACKS  # nothing was changed


def test_a_put_may_only_narrow_what_the_statement_allows_and_only_for_the_same_software(software):
    tpp = software()
    created = tpp.created()
    uri, token, client_id = created["registration_client_uri"], created["registration_access_token"], \
        created["client_id"]
    refusals = {
        "a redirect URI outside the statement (JSON)": (tpp.manage("PUT", uri, token, json={
            "client_id": client_id, "redirect_uris": ["https://evil.example/cb"],
            "token_endpoint_auth_method": "tls_client_auth"}), "invalid_client_metadata"),
        "another client_id in the body": (tpp.manage("PUT", uri, token, json={
            "client_id": "someone-else", "token_endpoint_auth_method": "tls_client_auth"}), "invalid_client_metadata"),
        "a redirect URI outside the statement (JWT)": (tpp.manage("PUT", uri, token, headers=JWT, content=tpp.request(
            redirect_uris=["https://evil.example/cb"])), "invalid_client_metadata"),
        "another software's statement": (tpp.manage("PUT", uri, token, headers=JWT, content=tpp.request(
            iss="tpp-demo", software_id="tpp-demo", software_statement=tpp.statement(software_id="tpp-demo"))),
            "invalid_software_statement"),
        "a form body": (tpp.manage("PUT", uri, token, data={"client_id": client_id}), "invalid_request"),
    }
    for name, (answer, error) in refusals.items():
        assert answer.status_code == 400 and answer.json()["error"] == error, (name, answer.text)
    unchanged = tpp.manage("GET", uri, token).json()
    assert unchanged["redirect_uris"] == CALLBACKS and unchanged["token_endpoint_auth_method"] == "tls_client_auth"


def test_a_client_may_register_for_dpop_bound_tokens_instead_of_certificate_bound_ones(software):
    tpp = software()
    answer = tpp.register(tpp.request(dpop_bound_access_tokens=True))
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["dpop_bound_access_tokens"] is True
    assert created["tls_client_certificate_bound_access_tokens"] is False
    read = tpp.manage("GET", created["registration_client_uri"], created["registration_access_token"]).json()
    assert read["dpop_bound_access_tokens"] is True


def test_a_disabled_client_may_not_manage_its_registration_until_enabled(gateway, software):
    tpp = software()
    created = tpp.created()
    uri, token = created["registration_client_uri"], created["registration_access_token"]
    assert gateway.cli("clients", "disable", created["client_id"]).returncode == 0
    for method in ("GET", "DELETE"):
        forbidden = tpp.manage(method, uri, token)
        assert forbidden.status_code == 403 and forbidden.json()["error"] == "access_denied", forbidden.text
    assert gateway.cli("clients", "enable", created["client_id"]).returncode == 0
    assert tpp.manage("GET", uri, token).status_code == 200


def test_a_client_the_operator_added_cannot_be_changed_through_registration(gateway, pki):
    gateway.register_tpps(pki, names=("tpp-demo",))
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    try:
        token = tpp.client_credentials("accounts")["access_token"]
        answer = tpp.http.put(gateway.base + "/oauth2/register/tpp-demo", headers={"Authorization": f"Bearer {token}"},
                              json={"client_id": "tpp-demo", "token_endpoint_auth_method": "tls_client_auth"})
    finally:
        tpp.close()
    assert answer.status_code == 403 and answer.json()["error"] == "access_denied", answer.text


def test_the_registration_access_token_is_kept_only_as_its_sha256(gateway, software):
    created = software().created()
    token = created["registration_access_token"].encode()
    stored = redis.Redis.from_url(gateway.redis_url)
    try:
        values: list[bytes] = []
        for key in stored.scan_iter(count=1000):
            kind = stored.type(key).decode()
            if kind == "string":
                values.append(stored.get(key) or b"")
            elif kind == "hash":
                values.extend(v for pair in stored.hgetall(key).items() for v in pair)
            elif kind in ("set", "zset"):
                values.extend(stored.smembers(key) if kind == "set" else stored.zrange(key, 0, -1))
            elif kind == "stream":
                values.extend(v for _, fields in stored.xrange(key) for pair in fields.items() for v in pair)
        document = json.loads(stored.get(f"obgw:client:{created['client_id']}"))
    finally:
        stored.close()
    assert values and not any(token in value for value in values)
    assert document["registration_access_token_sha256"] == hashlib.sha256(token).hexdigest()
