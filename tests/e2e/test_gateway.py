"""The real gateway (`obgw serve --workers 2`) over real mutual TLS, in front of a real HTTP back-end."""
from __future__ import annotations

import base64
import hashlib
import json
import ssl
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from support.gateway import Gateway, gateway_env, tpp_client
from support.policies import write_policy
from support.tpp import access_token_for

from gateway import pki as pkimod

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, backend, bank):
    root = tmp_path_factory.mktemp("gw")
    write_policy(root / "policies", backend, bank[0])
    # 127.0.0.2 plays a TLS-terminating proxy; every other address is an ordinary client.
    gw = Gateway(gateway_env(root / "var", pki, root / "policies", OBGW_TRUSTED_PROXIES="127.0.0.2/32"))
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def token(gateway, pki) -> str:
    """tpp-demo's consent-bound access token (the routes here reach the echo back-end, not the bank)."""
    return access_token_for(gateway, pki)


def _assert_ob_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"Code", "Id", "Message", "Errors"}
    assert body["Code"] == str(status) and body["Errors"][0]["ErrorCode"] == code
    assert body["Id"] == response.headers["x-fapi-interaction-id"]
    return body


def test_a_tpp_with_a_valid_certificate_reaches_the_back_end(gateway, pki, token):
    with tpp_client(pki, token=token) as tpp:
        response = tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts?page=2")
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["path"] == "/echo/accounts" and echoed["query"] == "page=2"
    uuid.UUID(response.headers["x-fapi-interaction-id"])


def test_without_a_certificate_the_call_is_refused_and_audited(gateway, pki, token):
    with tpp_client(pki, name=None) as anonymous:
        response = anonymous.get(gateway.base + "/open-banking/v3.1/aisp/accounts")
    _assert_ob_error(response, 401, "UK.OBIE.Field.Missing")
    records = gateway.audit("--reason", "identity.no_certificate")
    mine = [r for r in records if r["interaction_id"] == response.headers["x-fapi-interaction-id"]]
    assert len(mine) == 1
    assert mine[0]["status"] == 401 and mine[0]["decision"] == "refuse"
    assert mine[0]["route"] == "/open-banking/v3.1/aisp/accounts"


@pytest.mark.parametrize("kind", ["unknown CA", "expired"])
def test_a_certificate_the_gateway_does_not_trust_fails_the_handshake(gateway, pki, token, tmp_path, kind):
    if kind == "unknown CA":
        issued = pkimod.issue_client_cert(pkimod.make_ca("rogue CA"), "tpp-demo")
    else:
        now = datetime.now(timezone.utc)
        issued = pkimod.issue_client_cert(pkimod.load_ca(pki), "tpp-demo", not_before=now - timedelta(days=30),
                                          not_after=now - timedelta(days=1))
    issued.write(tmp_path / "c.pem", tmp_path / "c.key")
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(tmp_path / "c.pem"), str(tmp_path / "c.key"))
    before = len(gateway.audit())
    with httpx.Client(verify=context, timeout=5) as client, pytest.raises(httpx.TransportError):
        client.get(gateway.base + "/open-banking/v3.1/aisp/accounts")
    assert len(gateway.audit()) == before  # no HTTP request ever reached the gateway's app


def test_the_interaction_id_is_echoed_and_a_bad_one_replaced(gateway, pki, token):
    mine = str(uuid.uuid4())
    with tpp_client(pki, token=token) as tpp:
        echoed = tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts", headers={"x-fapi-interaction-id": mine})
        replaced = tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts",
                           headers={"x-fapi-interaction-id": "<script>"})
    assert echoed.headers["x-fapi-interaction-id"] == mine
    assert echoed.json()["headers"]["x-fapi-interaction-id"] == mine
    uuid.UUID(replaced.headers["x-fapi-interaction-id"])


def test_spoofable_and_hop_by_hop_headers_never_reach_the_bank_or_the_tpp(gateway, pki, token):
    sent = {"cookie": "session=1", "x-forwarded-for": "10.0.0.1", "forwarded": "for=10.0.0.1",
            "client-cert": ":AAAA:", "x-bank-customer-id": "bob", "x-fapi-customer-ip-address": "198.51.100.7",
            "te": "trailers"}
    with tpp_client(pki, token=token) as tpp:
        response = tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts", headers=sent)
    received = response.json()["headers"]
    for name in ("authorization", "cookie", "x-forwarded-for", "forwarded", "client-cert", "te"):
        assert name not in received
    # The bank is told whose data from the consent (alice authorised it), never from what the TPP sent.
    assert received["x-bank-customer-id"] == "alice"
    assert received["x-fapi-customer-ip-address"] == "198.51.100.7"
    assert "set-cookie" not in response.headers and "x-bank-internal" not in response.headers


def test_path_parameters_cannot_escape_their_segment(gateway, pki, token):
    with tpp_client(pki, token=token) as tpp:
        traversal = tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts/..%2F..%2Fadmin")
        query = tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts/a%3Fb%23c")
    _assert_ob_error(traversal, 404, "UK.OBIE.Resource.NotFound")  # a decoded '/' never matches a parameter
    assert query.json()["raw_path"] == "/echo/accounts/a%3Fb%23c" and query.json()["query"] == ""


def test_a_post_body_is_forwarded_unchanged(gateway, pki, token):
    body = json.dumps({"Data": {"Initiation": {"InstructedAmount": {"Amount": "1.00", "Currency": "GBP"}}}})
    with tpp_client(pki, token=token) as tpp:
        response = tpp.post(gateway.base + "/open-banking/v3.1/pisp/domestic-payments", content=body,
                            headers={"content-type": "application/json", "x-idempotency-key": "k1"})
    assert response.json()["body"] == body
    # The TPP's idempotency key reaches the bank scoped to the TPP (every TPP is one caller to the bank).
    assert response.json()["headers"]["x-idempotency-key"] == hashlib.sha256(b"tpp-demo\nk1").hexdigest()[:40]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonx", "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_json_on_a_json_route_is_415_audited_and_never_forwarded(gateway, pki, token, backend,
                                                                                    content_type):
    path = "/open-banking/v3.1/pisp/domestic-payments"
    seen_before = httpx.get(backend + "/control/seen").json().get("/echo/payments", 0)
    headers = {"x-idempotency-key": f"media-{content_type}"} | ({"content-type": content_type} if content_type else {})
    with tpp_client(pki, token=token) as tpp:
        response = tpp.post(gateway.base + path, content=b'{"Data": {}}', headers=headers)
    body = _assert_ob_error(response, 415, "UK.OBIE.Header.Invalid")
    assert body["Errors"][0]["Path"] == "Content-Type"
    assert httpx.get(backend + "/control/seen").json().get("/echo/payments", 0) == seen_before
    [record] = [r for r in gateway.audit("--reason", "request.unsupported_media_type")
                if r["interaction_id"] == response.headers["x-fapi-interaction-id"]]
    assert record["status"] == 415 and record["route"] == path


def test_json_with_a_charset_is_json(gateway, pki, token):
    with tpp_client(pki, token=token) as tpp:
        response = tpp.post(gateway.base + "/open-banking/v3.1/pisp/domestic-payments", content=b'{"Data": {}}',
                            headers={"content-type": "Application/JSON; charset=utf-8", "x-idempotency-key": "cs"})
    assert response.status_code == 200 and response.json()["body"] == '{"Data": {}}'


def test_a_consent_request_that_is_not_json_is_415(gateway, pki):
    with tpp_client(pki) as tpp:
        token = tpp.post(gateway.base + "/oauth2/token", data={
            "grant_type": "client_credentials", "scope": "accounts", "client_id": "tpp-demo"}).json()["access_token"]
        response = tpp.post(gateway.base + "/open-banking/v3.1/aisp/account-access-consents",
                            data={"Data": "x"}, headers={"authorization": f"Bearer {token}"})
    _assert_ob_error(response, 415, "UK.OBIE.Header.Invalid")


@pytest.mark.parametrize("path, status, reason", [
    ("/open-banking/v3.1/test/down", 502, "backend.unavailable"),
    ("/open-banking/v3.1/test/slow", 504, "backend.timeout"),
    ("/open-banking/v3.1/test/fail", 502, "backend.error"),
])
def test_back_end_failures_become_ob_errors_without_internals(gateway, pki, token, path, status, reason):
    with tpp_client(pki, token=token) as tpp:
        response = tpp.get(gateway.base + path)
    _assert_ob_error(response, status, "UK.OBIE.UnexpectedError")
    assert "Traceback" not in response.text and "secret" not in response.text
    [record] = [r for r in gateway.audit("--reason", reason)
                if r["interaction_id"] == response.headers["x-fapi-interaction-id"]]
    assert record["status"] == status and record["route"] == path


def test_a_back_end_client_error_passes_through(gateway, pki, token):
    with tpp_client(pki, token=token) as tpp:
        response = tpp.get(gateway.base + "/open-banking/v3.1/test/teapot")
    assert response.status_code == 418


def test_unknown_routes_and_methods_answer_in_the_ob_error_shape(gateway, pki, token):
    with tpp_client(pki, token=token) as tpp:
        unknown = tpp.get(gateway.base + "/open-banking/v3.1/aisp/nothing-here")
        outside = tpp.get(gateway.base + "/wp-admin")
        wrong_method = tpp.delete(gateway.base + "/open-banking/v3.1/aisp/accounts")
    _assert_ob_error(unknown, 404, "UK.OBIE.Resource.NotFound")
    _assert_ob_error(outside, 404, "UK.OBIE.Resource.NotFound")
    _assert_ob_error(wrong_method, 405, "UK.OBIE.Resource.NotFound")
    assert wrong_method.headers["allow"] == "GET"


def _rfc9440(cert_path) -> str:
    der = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(Encoding.DER)
    return ":" + base64.b64encode(der).decode() + ":"


def test_a_trusted_proxy_forwards_the_client_certificate(gateway, pki, token):
    header = {"client-cert": _rfc9440(pki / "tpp-demo.pem")}
    with tpp_client(pki, name=None, token=token, local_address="127.0.0.2") as proxy:
        honoured = proxy.get(gateway.base + "/open-banking/v3.1/aisp/accounts", headers=header)
        garbage = proxy.get(gateway.base + "/open-banking/v3.1/aisp/accounts", headers={"client-cert": ":!!:"})
        # tpp-demo's token with tpp-other's certificate: the token is bound to the certificate it was issued to.
        other = proxy.get(gateway.base + "/open-banking/v3.1/aisp/accounts",
                          headers={"client-cert": _rfc9440(pki / "tpp-other.pem")})
    assert honoured.status_code == 200
    assert "client-cert" not in honoured.json()["headers"]
    [record] = [r for r in gateway.audit() if r["interaction_id"] == honoured.headers["x-fapi-interaction-id"]]
    assert record["cert_thumbprint"] == pkimod.thumbprint_sha256(
        x509.load_pem_x509_certificate((pki / "tpp-demo.pem").read_bytes()))
    _assert_ob_error(garbage, 401, "UK.OBIE.Field.Invalid")
    _assert_ob_error(other, 401, "UK.OBIE.Header.Invalid")


@pytest.mark.parametrize("second", ["tpp-demo", "tpp-other"])
def test_two_client_cert_fields_from_a_trusted_proxy_are_refused(gateway, pki, token, second):
    # One slipped past the proxy's strip: which one the proxy verified cannot be told, so neither is taken.
    headers = [("client-cert", _rfc9440(pki / "tpp-demo.pem")), ("client-cert", _rfc9440(pki / f"{second}.pem"))]
    with tpp_client(pki, name=None, token=token, local_address="127.0.0.2") as proxy:
        response = proxy.get(gateway.base + "/open-banking/v3.1/aisp/accounts", headers=headers)
    body = _assert_ob_error(response, 401, "UK.OBIE.Field.Invalid")
    assert "more than once" in body["Errors"][0]["Message"]
    [record] = [r for r in gateway.audit("--reason", "identity.bad_certificate")
                if r["interaction_id"] == response.headers["x-fapi-interaction-id"]]
    assert record["status"] == 401


def test_a_trusted_proxy_cannot_forward_a_certificate_from_an_unknown_ca(gateway, pki, token, tmp_path):
    rogue = pkimod.issue_client_cert(pkimod.make_ca("rogue CA"), "tpp-demo")
    rogue.write(tmp_path / "r.pem", tmp_path / "r.key")
    with tpp_client(pki, name=None, token=token, local_address="127.0.0.2") as proxy:
        response = proxy.get(gateway.base + "/open-banking/v3.1/aisp/accounts",
                             headers={"client-cert": _rfc9440(tmp_path / "r.pem")})
    _assert_ob_error(response, 401, "UK.OBIE.Field.Invalid")


def test_the_header_is_ignored_from_anyone_but_a_trusted_proxy(gateway, pki, token):
    with tpp_client(pki, name=None, token=token) as impostor:
        response = impostor.get(gateway.base + "/open-banking/v3.1/aisp/accounts",
                                headers={"client-cert": _rfc9440(pki / "tpp-demo.pem")})
    _assert_ob_error(response, 401, "UK.OBIE.Field.Missing")


def test_concurrent_calls_on_two_workers_leave_a_verifiable_log_and_metrics(gateway, pki, token):
    def call(_):
        with tpp_client(pki, token=token) as tpp:
            return [tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts").status_code for _ in range(10)]
    with ThreadPoolExecutor(8) as pool:
        statuses = [s for batch in pool.map(call, range(8)) for s in batch]
    assert statuses == [200] * 80
    done = gateway.cli("audit", "verify")
    assert done.returncode == 0, done.stderr
    assert "audit log intact" in done.stdout
    chains = {r["chain"] for r in gateway.audit() if r["method"] != "CLI"}  # not the operators' (clients add)
    assert len(chains) == 2  # one chain per worker process, both written to
    metrics = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/metrics").text
    assert 'obgw_requests_total{decision="allow",method="GET",route="/open-banking/v3.1/aisp/accounts",status="200"}' \
        in metrics
    health = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/healthz")
    assert health.status_code == 503  # the 'dead' service of this policy is unreachable
    assert health.json() == {"status": "unhealthy", "redis": "ok",
                             "services": {"echo": "ok", "dead": "unreachable", "accounts": "ok"}}


def test_a_request_body_cut_short_is_never_forwarded(gateway, pki, token):
    import socket
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(pki / "tpp-demo.pem"), str(pki / "tpp-demo.key"))
    interaction = str(uuid.uuid4())
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(f"POST /open-banking/v3.1/pisp/domestic-payments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Content-Type: application/json\r\nContent-Length: 100\r\nx-fapi-interaction-id: {interaction}"
                    f"\r\n\r\n{{\"Data\": {{\"partial\"".encode())
    [record] = _wait_for_record(gateway, interaction)
    assert record["reason"] == "request.incomplete" and record["status"] == 400


def _wait_for_record(gateway, interaction_id, seconds=10):
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [r for r in gateway.audit() if r["interaction_id"] == interaction_id]
        if found:
            return found
        time.sleep(0.2)
    return []
