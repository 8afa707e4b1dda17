"""Operations on the real gateway (`obgw serve --workers 2`): JSON log lines, the probes, the metrics worth
alerting on, W3C traceparent to the bank, and SIGHUP reloading the policy and the TLS certificate while calls are
in flight."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support.gateway import Gateway, gateway_env, tpp_client
from support.policies import write_policy
from support.tpp import access_token_for

from gateway import pki as pkimod

pytestmark = pytest.mark.e2e
TRACE_ID, PARENT = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
NEW_ROUTE = """  - id: test.added
    method: GET
    path: /open-banking/v3.1/test/added
    service: echo
    scope: accounts
    pass_through: true
    upstream_path: /echo/added
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, backend, bank):
    root = tmp_path_factory.mktemp("gw")
    write_policy(root / "policies", backend, bank[0])
    routes = root / "policies" / "routes.yaml"
    routes.write_text(routes.read_text().replace("timeout_ms: 500", "timeout_ms: 10000"))  # slow calls to hold
    tls = root / "tls"
    tls.mkdir()
    for name in ("server.pem", "server.key"):
        shutil.copy(pki / name, tls / name)
    gw = Gateway(gateway_env(root / "var", pki, root / "policies", OBGW_TLS_CERT=str(tls / "server.pem"),
                             OBGW_TLS_KEY=str(tls / "server.key")))
    gw.root = root  # type: ignore[attr-defined]
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def token(gateway, pki) -> str:
    return access_token_for(gateway, pki)


def _admin(gateway, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{gateway.admin_port}{path}", timeout=5)


def _log_lines(gateway) -> list[dict]:
    """The gateway's output: every line a JSON object but the command's one banner line."""
    lines = [line for line in gateway.process.lines if not line.startswith("obgw: gateway ")]
    return [json.loads(line) for line in lines]


def _ready(gateway, timeout: float = 15.0) -> httpx.Response:
    """/readyz once every worker serves (the gateway answers as soon as one does)."""
    deadline = time.monotonic() + timeout
    while (ready := _admin(gateway, "/readyz")).status_code != 200 and time.monotonic() < deadline:
        assert ready.json()["redis"] == "ok"
        time.sleep(0.2)
    return ready


def test_probes_live_and_ready_while_a_bank_service_is_down(gateway):
    live, ready, health = _admin(gateway, "/livez"), _ready(gateway), _admin(gateway, "/healthz")
    assert live.status_code == 200 and live.json()["status"] == "live"
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "redis": "ok", "workers": {"serving": 2, "configured": 2}}
    assert health.status_code == 503  # the policy's 'dead' service: /healthz asks the back-ends, /readyz does not


def test_the_traceparent_reaches_the_bank_with_the_gateway_span_and_is_logged(gateway, pki, token):
    interaction = str(uuid.uuid4())
    with tpp_client(pki, token=token) as tpp:
        response = tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts",
                           headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01", "x-fapi-interaction-id": interaction})
        fresh = tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts", headers={"traceparent": "junk"})
    assert response.status_code == 200 and "traceparent" not in response.headers  # level 1: a request header
    version, trace_id, span, flags = response.json()["headers"]["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01") and span != PARENT and len(span) == 16
    started = fresh.json()["headers"]["traceparent"].split("-")
    assert started[1] != TRACE_ID and started[3] == "00"
    time.sleep(0.2)
    [line] = [line for line in _log_lines(gateway) if line.get("interaction_id") == interaction]
    assert line["event"] == "request" and line["trace_id"] == TRACE_ID and line["client_id"]
    assert (line["route"], line["status"], line["decision"]) == ("/open-banking/v3.1/aisp/accounts", 200, "allow")


def test_every_log_line_is_json_and_none_holds_a_token(gateway, pki, token):
    with tpp_client(pki, token=token) as tpp:
        tpp.get(gateway.base + "/open-banking/v3.1/test/fail")
    time.sleep(0.2)
    lines = _log_lines(gateway)
    assert {"startup", "request"} <= {line["event"] for line in lines}
    assert all({"ts", "level", "logger", "event"} <= set(line) for line in lines)
    text = gateway.process.output()
    assert token not in text and token.split(".")[1] not in text
    assert "secret internals" not in text  # the bank's 5xx body is not logged either


def test_the_metrics_worth_alerting_on(gateway, pki, token):
    with tpp_client(pki, token=token) as tpp:
        for _ in range(12):  # the dead service: its breaker opens on at least one of the two workers
            tpp.get(gateway.base + "/open-banking/v3.1/test/down")
        tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts")
    text = _admin(gateway, "/metrics").text
    for wanted in ('obgw_build_info{python="', 'obgw_upstream_duration_seconds_bucket{le="0.005",service="echo"}',
                   'obgw_upstream_calls_total{outcome="2xx",service="echo"}',
                   'obgw_upstream_calls_total{outcome="unavailable",service="dead"}',
                   'obgw_breaker_state{service="dead"} 2.0', 'obgw_breaker_state{service="echo"} 0.0',
                   'obgw_refusals_total{reason="backend.circuit_open"}', "obgw_audit_append_seconds_count ",
                   "obgw_redis_ping_seconds_count ", 'obgw_tpp_requests_total{client_id="', "obgw_workers_serving 2.0",
                   "obgw_workers_configured 2.0"):
        assert wanted in text, wanted


def _server_serial(gateway, pki) -> int:
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509
    return x509.load_der_x509_certificate(der).serial_number


def test_sighup_reloads_policy_and_certificate_while_calls_in_flight_finish(gateway, pki, token):
    added = gateway.base + "/open-banking/v3.1/test/added"
    with tpp_client(pki, token=token) as tpp:
        assert tpp.get(added).status_code == 404
    serial = _server_serial(gateway, pki)
    routes = gateway.root / "policies" / "routes.yaml"
    routes.write_text(routes.read_text() + NEW_ROUTE)
    renewed = pkimod.issue_server_cert(pkimod.load_ca(pki))
    renewed.write(gateway.root / "tls" / "server.pem", gateway.root / "tls" / "server.key")

    errors: list[str] = []
    stop = threading.Event()

    def keep_calling() -> int:
        """One kept-alive connection, calling all through the reload."""
        done = 0
        with tpp_client(pki, token=token) as tpp:
            while not stop.is_set():
                try:
                    try:
                        status = tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts").status_code
                    except httpx.RemoteProtocolError:
                        # An old worker closed this idle kept-alive connection as the request went out: a client may
                        # send an idempotent request again (RFC 9112 §9.3.1), and httpx does so on a new connection.
                        status = tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts").status_code
                except httpx.TransportError as exc:
                    errors.append(repr(exc))
                    continue
                if status != 200:
                    errors.append(str(status))
                done += 1
                time.sleep(0.1)  # under the TPP's rate limit
        return done

    def slow_call(_) -> int:
        with tpp_client(pki, token=token) as tpp:
            return tpp.get(gateway.base + "/open-banking/v3.1/test/slow?ms=4000").status_code

    with ThreadPoolExecutor(8) as pool:
        callers = [pool.submit(keep_calling) for _ in range(2)]
        slow = [pool.submit(slow_call, i) for i in range(6)]  # in flight on both workers when they are replaced
        time.sleep(0.5)
        os.kill(gateway.process.popen.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                line.get("event") == "reload" and line.get("stage") == "done" for line in _log_lines(gateway)):
            time.sleep(0.2)
        stop.set()
        assert [future.result() for future in slow] == [200] * 6   # in flight through the reload: answered
        assert all(future.result() > 0 for future in callers)
    assert errors == []
    reloads = [line for line in _log_lines(gateway) if line.get("event") == "reload"]
    assert [line["stage"] for line in reloads] == ["started", "done"]
    assert not set(reloads[0]["workers"]) & set(reloads[1]["workers"])  # every worker replaced
    with tpp_client(pki, token=token) as tpp:
        assert tpp.get(added).status_code == 200                     # the new policy
    assert _server_serial(gateway, pki) == renewed.cert.serial_number != serial  # the new certificate
    assert _ready(gateway, timeout=5).status_code == 200


def test_a_policy_that_does_not_load_is_refused_and_changes_nothing(gateway, pki, token):
    routes = gateway.root / "policies" / "routes.yaml"
    good = routes.read_text()
    routes.write_text(good + "  - id: broken\n")
    try:
        os.kill(gateway.process.popen.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                line.get("event", "").startswith("reload refused") for line in _log_lines(gateway)):
            time.sleep(0.1)
        [refused] = [line for line in _log_lines(gateway) if line.get("event", "").startswith("reload refused")]
        assert refused["level"] == "error" and "routes.yaml" in refused["error"]
        with tpp_client(pki, token=token) as tpp:
            assert tpp.get(gateway.base + "/open-banking/v3.1/aisp/accounts").status_code == 200
    finally:
        routes.write_text(good)
