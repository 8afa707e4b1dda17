"""The resource pipeline in process: the app's middleware and `resource_stages`, driven through httpx.ASGITransport,
against the session's real Redis (Admit's scripts) and a fake bank on 127.0.0.1 that counts what reaches it.

What the e2e tests prove through a served process, proved here per stage in milliseconds: VerifyAccessToken (a
good token passes; a tampered, expired or other-certificate one is refused), Admit (a consent that is revoked or
not authorised, a revoked token, a missing permission or account are refused, with the rate headers on the answer),
Forward (a bank 500 is 502 `backend.error`, a slow bank 504 `backend.timeout`) and Minimise (fields and accounts the
consent does not allow are cut). A refused call never reaches the bank, and every call leaves one audit record.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import httpx
import jwt
import orjson
import pytest
from aiohttp import web
from starlette.routing import Mount, Router

from gateway.audit.customers import CustomerIds
from gateway.consents.model import Consent, Kind, Status, expires_ms, to_record
from gateway.oauth.models import Client, Grantee
from gateway.oauth.signing_keys import KeyEncryptionKey, KeyRing, new_key_record
from gateway.oauth.tokens import AccessTokenVerifier, TokenIssuer
from gateway.pipeline import Pipeline, resource_stages
from gateway.pipeline.endpoint import ResourceEndpoint
from gateway.pipeline.forward import Forward
from gateway.pipeline.identity import from_tls_extension
from gateway.pipeline.middleware import AnonymousThrottle, Audit, InteractionId, RenderErrors, TransportIdentity
from gateway.pipeline.token import KeyCache
from gateway.policy import load_policy
from gateway.store import names
from gateway.store.admission import AdmissionStore
from gateway.store.consents import ConsentStore
from gateway.store.idempotency import IdempotencyStore
from gateway.store.redis import async_client
from gateway.store.vrp import VrpUsage

ISSUER, AUDIENCE, LIFETIME = "https://gw.obgw.test", "https://gw.obgw.test", 300
CLIENT_ID, CONSENT_ID, GRANT_ID = "tpp-demo", "aac-1", "grant-1"
CUSTOMERS = CustomerIds(os.urandom(32))
KEK = KeyEncryptionKey(os.urandom(32))
KID, KEY_RECORD = new_key_record(KEK)
RING = KeyRing({KID: KEY_RECORD}, overlap=600, kek=KEK)
ACCOUNTS = "/open-banking/v3.1/aisp/accounts"
PRESENT = {"x-fapi-customer-ip-address": "203.0.113.7"}  # the customer is present: no unattended allowance spent

ROUTES = f"""format_version: 1
routes:
  - id: ais.accounts.list
    method: GET
    path: {ACCOUNTS}
    service: accounts
    scope: accounts
    permissions: [ReadAccountsBasic, ReadAccountsDetail]
    selected_accounts_param: account_ids
    response_type: OBReadAccount6
  - id: ais.balances.list
    method: GET
    path: {ACCOUNTS}/{{AccountId}}/balances
    service: accounts
    scope: accounts
    permissions: [ReadBalances]
    account_param: AccountId
    response_type: OBReadBalance1
  - id: ais.transactions.list
    method: GET
    path: {ACCOUNTS}/{{AccountId}}/transactions
    service: accounts
    scope: accounts
    permissions: [ReadTransactionsBasic, ReadTransactionsDetail]
    account_param: AccountId
    response_type: OBReadTransaction6
  - id: test.fail
    method: GET
    path: /open-banking/v3.1/test/fail
    service: accounts
    scope: accounts
    upstream_path: /fail
    response_type: OBReadBalance1
  - id: test.slow
    method: GET
    path: /open-banking/v3.1/test/slow
    service: accounts
    scope: accounts
    upstream_path: /slow
    timeout_ms: 200
    response_type: OBReadBalance1
"""

BANK_ACCOUNTS = {
    "Data": {"Account": [
        {"AccountId": "acc-1", "Currency": "GBP", "Nickname": "Bills", "InternalRiskScore": 7,
         "Account": [{"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "11223344556677"}]},
        {"AccountId": "acc-2", "Currency": "GBP", "Nickname": "Savings"},
        {"AccountId": "acc-3", "Currency": "EUR", "Nickname": "Not selected"}]},
    "Links": {"Self": "http://bank.internal:8081/open-banking/v3.1/aisp/accounts"},
    "Meta": {"TotalPages": 1}}


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory) -> Path:
    """The shipped services, fields and limits with routes of this module's own (a failing and a slow one)."""
    directory = tmp_path_factory.mktemp("policy")
    shipped = Path(__file__).parents[3] / "policies"
    for name in ("services.yaml", "fields.yaml", "limits.yaml"):
        shutil.copy(shipped / name, directory / name)
    (directory / "routes.yaml").write_text(ROUTES)
    return directory


@pytest.fixture(scope="module")
def certificates(pki) -> dict[str, str]:
    return {name: (pki / f"{name}.pem").read_text() for name in ("tpp-demo", "tpp-other")}


@dataclass
class FakeBank:
    """The accounts service: answers by path, and keeps every request that reached it."""
    seen: list[web.BaseRequest] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets a slow answer end at teardown

    async def handle(self, request: web.BaseRequest) -> web.Response:
        self.seen.append(request)
        if request.path == "/fail":
            return web.Response(status=500, text="Traceback (most recent call last): secret internals")
        if request.path == "/slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 5)
            return web.json_response({})
        if request.path == ACCOUNTS:
            return web.json_response(BANK_ACCOUNTS, headers={"ETag": '"v1"', "X-Bank-Internal": "node-7"})
        return web.json_response({"Data": {"Balance": [{"AccountId": "acc-1", "Type": "InterimAvailable"}]},
                                  "Links": {"Self": "x"}, "Meta": {}})


class WithTls:
    """Puts the client certificate in the ASGI TLS extension (leaf PEM first), as server.py does for a verified peer."""

    def __init__(self, app) -> None:
        self.app, self.cert = app, None

    async def __call__(self, scope, receive, send) -> None:
        if self.cert:
            scope["extensions"] = {"tls": {"client_cert_chain": [self.cert]}}
        await self.app(scope, receive, send)


@dataclass
class Gateway:
    client: httpx.AsyncClient
    tls: WithTls
    bank: FakeBank
    records: list
    certificates: dict[str, str]

    async def get(self, path: str, token: str | None, cert: str | None = "tpp-demo") -> httpx.Response:
        """GET `path` as the TPP holding `cert` (None: no certificate), with `token` (None: no Authorization)."""
        self.tls.cert = self.certificates[cert] if cert else None
        headers = {**PRESENT, **({"authorization": f"Bearer {token}"} if token is not None else {})}
        return await self.client.get(path, headers=headers)


@contextlib.asynccontextmanager
async def gateway(policy_dir: Path, redis_url: str, redis_client, certificates: dict[str, str]):
    """The app as create_app assembles the `/open-banking` path, its bank a FakeBank, its audit a list."""
    bank = FakeBank()
    server = web.Server(bank.handle)
    runner = web.ServerRunner(server, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    policy = load_policy(policy_dir, {"accounts": f"http://127.0.0.1:{port}"})
    redis = async_client(redis_url)
    admission = AdmissionStore(redis)
    await redis.hset(names.SIGNING_KEYS, KID, orjson.dumps(KEY_RECORD))
    forward = Forward(policy)
    await forward.start()
    pipeline = Pipeline(resource_stages(
        policy, forward, AccessTokenVerifier(ISSUER, AUDIENCE, LIFETIME), KeyCache(admission, overlap=600),
        admission, ISSUER, clients=None, consents=ConsentStore(redis_client, CUSTOMERS, live=redis),
        idempotency=IdempotencyStore(redis), ring=lambda: RING, vrp=VrpUsage(redis), fingerprint_key=bytes(32)))
    records: list = []

    async def store(record) -> None:
        records.append(record)

    router = Router(routes=[Mount("/open-banking", app=ResourceEndpoint(pipeline))], redirect_slashes=False)
    tls = WithTls(InteractionId(Audit(RenderErrors(TransportIdentity(AnonymousThrottle(router))), store=store)))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=tls), base_url="https://gw.obgw.test")
    try:
        yield Gateway(client, tls, bank, records, certificates)
    finally:
        bank.release.set()
        await client.aclose()
        await forward.close()
        await redis.aclose()
        await runner.cleanup()


@pytest.fixture
def run(policy_dir, redis_url, redis_client, certificates):
    """Run `scenario(gw)` against a gateway of its own, on the emptied Redis."""
    def run_scenario(scenario) -> None:
        async def go() -> None:
            async with gateway(policy_dir, redis_url, redis_client, certificates) as gw:
                await scenario(gw)
        asyncio.run(go())
    return run_scenario


@pytest.fixture
def stored(redis_client):
    """Store the consent as the consent API does (ConsentStore.create, the record of consents.model.to_record)."""
    def store(status: Status = Status.AUTHORISED, permissions=("ReadAccountsBasic", "ReadBalances")) -> None:
        consent = Consent(consent_id=CONSENT_ID, client_id=CLIENT_ID, kind=Kind.ACCOUNT_ACCESS, status=status,
                          created="2026-06-01T11:00:00+00:00", status_updated="2026-06-01T11:05:00+00:00",
                          permissions=permissions, expires=None, transaction_from=None, transaction_to=None,
                          customer_id="customer-1", accounts=("acc-1", "acc-2"),
                          grant_id=None if status is Status.AWAITING_AUTHORISATION else GRANT_ID)
        ConsentStore(redis_client, CUSTOMERS).create(to_record(consent), expires_ms(consent), lapse_seconds=3600)
    return store


def _token(certificate_pem: str, scope: str = "accounts") -> str:
    """A consent-bound access token from the authorization server's own TokenIssuer, bound to `certificate_pem`."""
    client = Client(client_id=CLIENT_ID, client_name="Demo", roles=("AISP",), redirect_uris=(),
                    auth_methods=("tls_client_auth",), cert_thumbprints=(), subject_dn=None, issuer_dn=None)
    thumbprint = from_tls_extension({"extensions": {"tls": {"client_cert_chain": [certificate_pem]}}}).thumbprint
    issuer = TokenIssuer(SimpleNamespace(ring=lambda: RING), None, ISSUER, AUDIENCE, LIFETIME, 0)  # no refresh tokens
    grantee = Grantee(subject="subject-1", consent_id=CONSENT_ID, grant_id=GRANT_ID, auth_time=int(time.time()))
    return issuer.issue(client, {"x5t#S256": thumbprint}, scope, grantee, include_refresh_token=False)["access_token"]


def _resigned(token: str, **changes) -> str:
    """`token` with its claims changed and signed again with the real key (a token the server could have issued)."""
    claims = jwt.decode(token, options={"verify_signature": False}) | changes
    return jwt.encode(claims, RING.signing.private, "ES256", headers=jwt.get_unverified_header(token))


def _error(response: httpx.Response) -> tuple[int, str, str]:
    """(status, UK OB ErrorCode, Message) of an OBErrorResponse1; its Id is the interaction id."""
    body = response.json()
    assert body["Id"] == response.headers["x-fapi-interaction-id"]
    return response.status_code, body["Errors"][0]["ErrorCode"], body["Errors"][0]["Message"]


def _refused(gw: Gateway, response: httpx.Response, reason: str) -> None:
    """Refused under `reason`: nothing reached the bank, and the refusal was audited once, under its reason."""
    assert gw.bank.seen == []
    assert [(r.status, r.decision, r.reason) for r in gw.records] == [(response.status_code, "refuse", reason)]


# VerifyAccessToken


def test_a_good_token_passes_every_stage_and_reaches_the_bank_once(run, certificates, stored):
    stored()

    async def scenario(gw: Gateway) -> None:
        response = await gw.get(f"{ACCOUNTS}/acc-1/balances", _token(certificates["tpp-demo"]))
        assert response.status_code == 200
        [request] = gw.bank.seen
        assert request.path == f"{ACCOUNTS}/acc-1/balances"
        # Forward: the bank learns the customer from the consent, never sees the TPP's token.
        assert request.headers["x-bank-customer-id"] == "customer-1"
        assert "authorization" not in request.headers
        assert request.headers["x-fapi-interaction-id"] == response.headers["x-fapi-interaction-id"]
        [record] = gw.records
        assert (record.status, record.decision, record.reason) == (200, "allow", None)
        assert (record.client_id, record.consent_id, record.route) == (
            CLIENT_ID, CONSENT_ID, f"{ACCOUNTS}/{{AccountId}}/balances")
    run(scenario)


@pytest.mark.parametrize("case, reason, message", [
    ("tampered", "token.bad_signature", "The access token's signature is not valid."),
    ("expired", "token.expired", "The access token has expired."),
    ("other certificate", "token.cnf_mismatch", None),
    ("missing", "token.missing", None),
])
def test_a_bad_token_is_refused_401_with_a_bearer_challenge(run, certificates, stored,
                                                           case, reason, message):
    stored()
    good = _token(certificates["tpp-demo"])
    header, payload, signature = good.split(".")
    other_consent = jwt.utils.base64url_encode(orjson.dumps(
        jwt.decode(good, options={"verify_signature": False}) | {"openbanking_intent_id": "aac-2"})).decode()
    now = int(time.time())
    token, cert = {
        "tampered": (f"{header}.{other_consent}.{signature}", "tpp-demo"),  # the consent id swapped, signature kept
        "expired": (_resigned(good, iat=now - 400, nbf=now - 400, exp=now - 100), "tpp-demo"),
        "other certificate": (good, "tpp-other"),  # tpp-demo's token, presented with tpp-other's certificate
        "missing": (None, "tpp-demo"),
    }[case]

    async def scenario(gw: Gateway) -> None:
        response = await gw.get(ACCOUNTS, token, cert)
        status, code, text = _error(response)
        assert (status, code) == (401, "UK.OBIE.Header.Invalid" if case != "missing" else "UK.OBIE.Header.Missing")
        assert message is None or text == message
        assert response.headers["www-authenticate"].startswith("Bearer")
        _refused(gw, response, reason)
    run(scenario)


def test_a_token_without_the_routes_scope_is_refused_403_insufficient_scope(run, certificates, stored):
    stored()

    async def scenario(gw: Gateway) -> None:
        response = await gw.get(ACCOUNTS, _token(certificates["tpp-demo"], scope="payments"))
        assert _error(response)[:2] == (403, "UK.OBIE.Resource.InvalidConsentStatus")
        assert response.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="accounts"'
        _refused(gw, response, "token.insufficient_scope")
    run(scenario)


def test_no_client_certificate_is_refused_before_the_token_is_read(run, certificates, stored):
    stored()

    async def scenario(gw: Gateway) -> None:
        response = await gw.get(ACCOUNTS, _token(certificates["tpp-demo"]), cert=None)
        assert _error(response)[:2] == (401, "UK.OBIE.Field.Missing")
        _refused(gw, response, "identity.no_certificate")
    run(scenario)


# Admit


@pytest.mark.parametrize("status", [Status.REVOKED, Status.AWAITING_AUTHORISATION])
def test_a_consent_not_authorised_is_refused_403_with_the_rate_headers(run, certificates, stored,
                                                                      status):
    stored(status)

    async def scenario(gw: Gateway) -> None:
        response = await gw.get(ACCOUNTS, _token(certificates["tpp-demo"]))
        assert _error(response) == (403, "UK.OBIE.Resource.InvalidConsentStatus", "The consent is not authorised.")
        # The call was charged to the TPP's rate limit (checked first), and the answer says so (standard tier).
        assert response.headers["ratelimit-policy"] == '"standard";q=100;w=5'
        assert response.headers["ratelimit"].startswith('"standard";r=99;')
        _refused(gw, response, "consent.not_authorised")
    run(scenario)


@pytest.mark.parametrize("path, reason, code", [
    (f"{ACCOUNTS}/acc-1/transactions", "consent.permission_missing", "UK.OBIE.Resource.InvalidConsentStatus"),
    (f"{ACCOUNTS}/acc-3/balances", "consent.account_not_selected", "UK.OBIE.Resource.NotFound"),
])
def test_a_permission_or_account_the_consent_lacks_is_refused(run, certificates, stored, path,
                                                             reason, code):
    stored()

    async def scenario(gw: Gateway) -> None:
        response = await gw.get(path, _token(certificates["tpp-demo"]))
        assert _error(response)[:2] == (403, code)
        assert "ratelimit" in response.headers and "ratelimit-policy" in response.headers
        _refused(gw, response, reason)
    run(scenario)


def test_a_revoked_token_is_refused_from_its_next_call(run, redis_client, certificates, stored):
    stored()
    token = _token(certificates["tpp-demo"])
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]

    async def scenario(gw: Gateway) -> None:
        assert (await gw.get(f"{ACCOUNTS}/acc-1/balances", token)).status_code == 200
        redis_client.set(names.revoked_token(CLIENT_ID, jti), b"1")
        response = await gw.get(f"{ACCOUNTS}/acc-1/balances", token)
        assert _error(response)[:2] == (401, "UK.OBIE.Header.Invalid")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert len(gw.bank.seen) == 1  # only the call before the revocation
        assert [(r.status, r.reason) for r in gw.records] == [(200, None), (401, "token.revoked")]
    run(scenario)


# Forward


@pytest.mark.parametrize("path, status, reason, message", [
    ("/open-banking/v3.1/test/fail", 502, "backend.error", "The bank's service answered 500."),
    ("/open-banking/v3.1/test/slow", 504, "backend.timeout", "The bank's service did not answer in time."),
])
def test_a_failing_or_slow_bank_is_answered_by_the_gateway(run, certificates, stored, path, status,
                                                          reason, message):
    stored()

    async def scenario(gw: Gateway) -> None:
        started = time.monotonic()
        response = await gw.get(path, _token(certificates["tpp-demo"]))
        assert _error(response) == (status, "UK.OBIE.UnexpectedError", message)
        assert b"Traceback" not in response.content  # the bank's error body never reaches the TPP
        assert len(gw.bank.seen) == 1
        assert time.monotonic() - started < 3  # the route's 200 ms timeout, not the bank's 5 s
        assert [(r.status, r.decision, r.reason) for r in gw.records] == [(status, "refuse", reason)]
    run(scenario)


# Minimise


def test_the_answer_is_cut_to_what_the_consent_allows(run, certificates, stored):
    stored(permissions=("ReadAccountsBasic",))  # not ReadAccountsDetail: no account identification

    async def scenario(gw: Gateway) -> None:
        response = await gw.get(ACCOUNTS, _token(certificates["tpp-demo"]))
        assert response.status_code == 200
        # Forward asked the bank only for the selected accounts ...
        [request] = gw.bank.seen
        assert request.query["account_ids"] == "acc-1,acc-2"
        # ... and Minimise cut what it answered all the same: the unselected account, the Detail-only Account
        # block, a field no rule names; Links.Self names the gateway.
        assert response.json() == {
            "Data": {"Account": [{"AccountId": "acc-1", "Currency": "GBP", "Nickname": "Bills"},
                                 {"AccountId": "acc-2", "Currency": "GBP", "Nickname": "Savings"}]},
            "Links": {"Self": f"{ISSUER}{ACCOUNTS}"}, "Meta": {"TotalPages": 1}}
        # What described the bank's bytes is dropped, consented data is never cached, internal headers never pass.
        assert "etag" not in response.headers and "x-bank-internal" not in response.headers
        assert response.headers["cache-control"] == "no-store"
        assert len(gw.records) == 1 and gw.records[0].status == 200
    run(scenario)
