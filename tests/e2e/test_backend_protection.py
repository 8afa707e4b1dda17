"""Back-end protection on the real gateway (one worker, so one breaker and one cap per service): the circuit breaker
opens on a dead or slow back-end and recovers through one probe, the concurrency cap answers at once, and a body
over the route's limit is refused before it reaches the back-end. Every refusal is audited with its reason."""
from __future__ import annotations

import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support.gateway import Gateway, client_context, gateway_env, tpp_client
from support.ports import free_port
from support.tpp import access_token_for

pytestmark = pytest.mark.e2e

TEST = "/open-banking/v3.1/test"
FAST_MS = 50  # an answer the gateway gives without asking the back-end


def _write_policy(directory, backend_url: str, accounts_url: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "services.yaml").write_text(f"""format_version: 1
services:
  echo:
    url: {backend_url}
    timeout_ms: 5000
    breaker: {{failures: 3, open_seconds: 2}}
  dead:
    url: http://127.0.0.1:{free_port()}
    connect_timeout_ms: 500
    breaker: {{failures: 3, open_seconds: 2}}
  slow:
    url: {backend_url}
    breaker: {{failures: 3, open_seconds: 2}}
  capped:
    url: {backend_url}
    max_concurrent: 2
  accounts:
    url: {accounts_url}
""")
    (directory / "routes.yaml").write_text(f"""format_version: 1
routes:
  - {{id: test.flaky, method: GET, scope: accounts, path: {TEST}/flaky, service: echo, upstream_path: /flaky,
     pass_through: true}}
  - {{id: test.teapot, method: GET, scope: accounts, path: {TEST}/teapot, service: echo, upstream_path: /status/418,
     pass_through: true}}
  - {{id: test.probe, method: GET, scope: accounts, path: {TEST}/probe, service: echo, upstream_path: /slow/probe,
     pass_through: true}}
  - {{id: test.upload, method: POST, scope: accounts, path: {TEST}/upload, service: echo, upstream_path: /echo/upload,
     max_body_bytes: 1024, pass_through: true}}
  - {{id: test.down, method: GET, scope: accounts, path: {TEST}/down, service: dead, pass_through: true}}
  - {{id: test.slow, method: GET, scope: accounts, path: {TEST}/slow, service: slow, upstream_path: /slow/timeout,
     timeout_ms: 300, pass_through: true}}
  - {{id: test.capped, method: GET, scope: accounts, path: {TEST}/capped, service: capped, upstream_path: /slow/capped,
     pass_through: true}}
""")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, backend, bank):
    root = tmp_path_factory.mktemp("gw")
    _write_policy(root / "policies", backend, bank[0])
    gw = Gateway(gateway_env(root / "var", pki, root / "policies"), workers=1)
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def token(gateway, pki) -> str:
    return access_token_for(gateway, pki)


@pytest.fixture
def control(backend):
    with httpx.Client(base_url=backend, timeout=5) as client:
        yield client
        client.post("/control/flaky/heal")


def _seen(control: httpx.Client, upstream_path: str) -> int:
    """How many requests reached the test back-end at `upstream_path`."""
    return control.get("/control/seen").json().get(upstream_path, 0)


def _wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _records(gateway, *responses: httpx.Response) -> list[dict]:
    """The audit record of each response, in order."""
    by_id = {r["interaction_id"]: r for r in gateway.audit()}
    return [by_id[response.headers["x-fapi-interaction-id"]] for response in responses]


def _assert_refused(response: httpx.Response, status: int, reason_code: str = "UK.OBIE.UnexpectedError") -> None:
    assert response.status_code == status, response.text
    assert response.json()["Errors"][0]["ErrorCode"] == reason_code
    assert "Traceback" not in response.text and "secret" not in response.text


def test_a_dead_back_end_opens_the_breaker_which_then_answers_at_once(gateway, pki, token):
    with tpp_client(pki, token=token) as tpp:
        failed = [tpp.get(gateway.base + TEST + "/down") for _ in range(3)]
        refused = [tpp.get(gateway.base + TEST + "/down") for _ in range(2)]
    for response in failed:
        _assert_refused(response, 502)
    for response in refused:
        _assert_refused(response, 503)
        assert 1 <= int(response.headers["retry-after"]) <= 2
    records = _records(gateway, *failed, *refused)
    assert [r["reason"] for r in records] == ["backend.unavailable"] * 3 + ["backend.circuit_open"] * 2
    assert [r["status"] for r in records] == [502] * 3 + [503] * 2
    assert all(r["latency_ms"] < FAST_MS for r in records[3:]), records[3:]


def test_timeouts_open_the_breaker_too_and_the_route_timeout_applies(gateway, pki, token, control):
    before = _seen(control, "/slow/timeout")
    with tpp_client(pki, token=token) as tpp:
        timed_out = [tpp.get(gateway.base + TEST + "/slow") for _ in range(3)]
        refused = tpp.get(gateway.base + TEST + "/slow")
    for response in timed_out:
        _assert_refused(response, 504)
    _assert_refused(refused, 503)
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    records = _records(gateway, *timed_out, refused)
    assert [r["reason"] for r in records] == ["backend.timeout"] * 3 + ["backend.circuit_open"]
    assert all(300 <= r["latency_ms"] < 2000 for r in records[:3]), records  # the route's 300 ms, not the 3 s sleep
    assert records[3]["latency_ms"] < FAST_MS
    assert _seen(control, "/slow/timeout") == before + 3  # the refused call never reached the back-end


def test_the_breaker_recovers_through_one_probe_at_a_time(gateway, pki, token, control):
    control.post("/control/flaky/fail")
    with tpp_client(pki, token=token) as tpp:
        def get(path: str) -> httpx.Response:
            return tpp.get(gateway.base + TEST + path)

        failing = [get("/flaky") for _ in range(2)]
        answered = get("/teapot")  # a 4xx is the back-end answering: the failures in a row start again
        failing += [get("/flaky") for _ in range(3)]
        reached = _seen(control, "/flaky")
        opened = get("/flaky")
        assert answered.status_code == 418
        for response in failing:
            _assert_refused(response, 502)
        _assert_refused(opened, 503)
        assert _seen(control, "/flaky") == reached

        control.post("/control/flaky/heal")
        time.sleep(int(opened.headers["retry-after"]))  # now half-open
        with ThreadPoolExecutor(1) as pool, tpp_client(pki, token=token) as prober:
            probe = pool.submit(prober.get, gateway.base + TEST + "/probe?ms=1000")
            _wait_until(lambda: _seen(control, "/slow/probe") == 1)
            during_probe = get("/flaky")  # the one probe is out: everyone else is still refused
            assert probe.result().status_code == 200
        _assert_refused(during_probe, 503)
        assert during_probe.headers["retry-after"] == "1"
        flowing = [get("/flaky") for _ in range(3)]
    assert [r.status_code for r in flowing] == [200] * 3
    records = _records(gateway, *failing, opened, during_probe)
    assert [r["reason"] for r in records] == ["backend.error"] * 5 + ["backend.circuit_open"] * 2
    assert all(r["latency_ms"] < FAST_MS for r in records[5:]), records[5:]


def test_a_call_over_the_concurrency_cap_is_refused_at_once(gateway, pki, token, control):
    before = _seen(control, "/slow/capped")

    def slow_call(_) -> httpx.Response:
        with tpp_client(pki, token=token) as tpp:
            return tpp.get(gateway.base + TEST + "/capped?ms=1500")

    with ThreadPoolExecutor(2) as pool:
        in_flight = [pool.submit(slow_call, i) for i in range(2)]
        _wait_until(lambda: _seen(control, "/slow/capped") == before + 2)
        with tpp_client(pki, token=token) as tpp:
            busy = tpp.get(gateway.base + TEST + "/capped?ms=1500")
        answers = [call.result() for call in in_flight]
    _assert_refused(busy, 503)
    assert busy.headers["retry-after"] == "1"
    assert [a.status_code for a in answers] == [200, 200]
    [record] = _records(gateway, busy)
    assert record["reason"] == "backend.busy" and record["latency_ms"] < FAST_MS
    assert _seen(control, "/slow/capped") == before + 2
    with tpp_client(pki, token=token) as tpp:  # the slots were given back
        assert tpp.get(gateway.base + TEST + "/capped?ms=0").status_code == 200


def test_a_body_over_the_route_limit_is_refused_and_never_forwarded(gateway, pki, token, control):
    url = gateway.base + TEST + "/upload"
    json = {"content-type": "application/json"}
    before = _seen(control, "/echo/upload")
    with tpp_client(pki, token=token) as tpp:
        declared = tpp.post(url, content=b"x" * 2048, headers=json)
        chunked = tpp.post(url, content=iter([b"x" * 512] * 4), headers=json)
        fits = tpp.post(url, content=b"y" * 1024, headers=json)
    assert declared.request.headers["content-length"] == "2048"
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    for response in (declared, chunked):
        _assert_refused(response, 413, "UK.OBIE.Field.Invalid")
    assert fits.status_code == 200 and fits.json()["body"] == "y" * 1024
    assert _seen(control, "/echo/upload") == before + 1  # only the one that fits
    refused = [(r["status"], r["reason"], r["route"]) for r in _records(gateway, declared, chunked)]
    assert refused == [(413, "request.too_large", TEST + "/upload")] * 2


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(gateway, pki, token):
    context = client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(f"POST {TEST}/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 2048\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:  # no body byte is ever sent: the answer cannot wait for one
            try:
                chunk = tls.recv(4096)
            except (TimeoutError, ssl.SSLError):
                break
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
