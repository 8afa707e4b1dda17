"""Forward to a real TLS back-end on loopback: the CA and client certificate of services.yaml's `tls`, validated like
every policy key; the call's W3C traceparent reaches the bank; the upstream metrics count it."""
from __future__ import annotations

import asyncio
import json
import shutil
import ssl
from pathlib import Path

import pytest
from aiohttp import web

from gateway import pki, trace
from gateway.admin import metrics
from gateway.call import Call
from gateway.errors import Refusal
from gateway.pipeline.forward import Forward
from gateway.policy import PolicyError, load_policy

POLICIES = Path(__file__).resolve().parents[3] / "policies"
TRACE_ID, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def bank_pki(tmp_path_factory) -> Path:
    """The bank's own CA, its server certificate for 127.0.0.1, and the client certificate the gateway presents."""
    directory = tmp_path_factory.mktemp("bank-pki")
    ca = pki.make_ca("bank CA")
    (directory / "ca.pem").write_bytes(ca.cert_pem())
    pki.issue_server_cert(ca, ("127.0.0.1",)).write(directory / "server.pem", directory / "server.key")
    pki.issue_client_cert(ca, "obgw-gateway").write(directory / "gateway.pem", directory / "gateway.key")
    other = pki.make_ca("someone else's CA")
    (directory / "other-ca.pem").write_bytes(other.cert_pem())
    return directory


def _policy_dir(tmp_path: Path, url: str, tls: dict | None) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory, ignore=shutil.ignore_patterns("*.md"))
    accounts = {"url": url, **({"tls": tls} if tls is not None else {})}
    (directory / "services.yaml").write_text(  # YAML is a superset of JSON
        json.dumps({"format_version": 1, "services": {"accounts": accounts,
                                                      "payments": {"url": "http://127.0.0.1:8082"}}}))
    return directory


async def _serving(bank_pki: Path, seen: list) -> tuple[web.AppRunner, int]:
    async def accounts(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append((dict(request.headers), peer))
        return web.json_response({"Data": {"Account": []}, "Links": {"Self": "x"}, "Meta": {}})
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", accounts)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=bank_pki / "ca.pem")
    context.load_cert_chain(bank_pki / "server.pem", bank_pki / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED  # the bank takes callers with its client certificates only
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def _call(policy) -> Call:
    route = next(r for r in policy.routes if r.method == "GET" and r.path == "/open-banking/v3.1/aisp/accounts")
    call = Call(interaction_id="9f1c8c3e-4b7a-4c1e-9d2e-0c6a1b2c3d4e", ts="", started=0.0, method="GET",
                trace=trace.continue_or_start(f"00-{TRACE_ID}-{PARENT}-01".encode()))
    call.route, call.route_template = route, route.path
    return call


async def _forward(policy, call: Call) -> None:
    forward = Forward(policy)
    await forward.start()
    try:
        await forward.on_request(call)
    finally:
        await forward.close()


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _through_tls(tmp_path: Path, bank_pki: Path, tls: dict) -> tuple[list, Call | Refusal]:
    """One call forwarded to the TLS bank with services.yaml's `tls`: what reached the bank, and the call (answered)
    or the refusal."""
    async def go() -> tuple[list, Call | Refusal]:
        seen: list = []
        runner, port = await _serving(bank_pki, seen)
        try:
            policy = load_policy(_policy_dir(tmp_path, f"https://127.0.0.1:{port}",
                                             {key: str(bank_pki / name) for key, name in tls.items()}))
            call = _call(policy)
            try:
                await _forward(policy, call)
            except Refusal as refusal:
                return seen, refusal
            return seen, call
        finally:
            await runner.cleanup()
    return asyncio.run(go())


MUTUAL = {"ca_file": "ca.pem", "cert_file": "gateway.pem", "key_file": "gateway.key"}


def test_the_bank_is_reached_over_tls_with_the_gateway_client_certificate_and_the_trace(tmp_path, bank_pki):
    before = _sample("obgw_upstream_calls_total", service="accounts", outcome="2xx")
    seen, call = _through_tls(tmp_path, bank_pki, MUTUAL)
    assert isinstance(call, Call) and call.upstream is not None and call.upstream.status == 200
    [(headers, peer)] = seen
    assert peer is not None and dict(peer["subject"][0])["commonName"] == "obgw-gateway"
    assert call.trace is not None and call.trace.span_id != PARENT
    assert headers["traceparent"] == f"00-{TRACE_ID}-{call.trace.span_id}-01"
    assert _sample("obgw_upstream_calls_total", service="accounts", outcome="2xx") == before + 1
    assert _sample("obgw_upstream_duration_seconds_count", service="accounts") >= 1
    assert _sample("obgw_breaker_state", service="accounts") == 0


def test_a_bank_whose_certificate_does_not_chain_to_the_configured_ca_is_not_called(tmp_path, bank_pki):
    seen, refusal = _through_tls(tmp_path, bank_pki, MUTUAL | {"ca_file": "other-ca.pem"})
    assert seen == [] and isinstance(refusal, Refusal) and refusal.reason == "backend.unavailable"


def test_without_the_client_certificate_the_bank_refuses_the_handshake(tmp_path, bank_pki):
    seen, refusal = _through_tls(tmp_path, bank_pki, {"ca_file": "ca.pem"})
    assert seen == [] and isinstance(refusal, Refusal)
    assert refusal.reason in ("backend.unavailable", "backend.unanswered")


def test_relative_tls_files_are_read_from_the_policy_directory(tmp_path, bank_pki):
    directory = _policy_dir(tmp_path, "https://bank.example", {"ca_file": "bank/ca.pem", "cert_file": "bank/gw.pem",
                                                                "key_file": "bank/gw.key"})
    (directory / "bank").mkdir()
    for source, name in (("ca.pem", "ca.pem"), ("gateway.pem", "gw.pem"), ("gateway.key", "gw.key")):
        shutil.copy(bank_pki / source, directory / "bank" / name)
    tls = load_policy(directory).services["accounts"].tls
    assert tls is not None and tls.ca_file == (directory / "bank" / "ca.pem").resolve()


@pytest.mark.parametrize(("url", "tls", "message"), [
    ("http://127.0.0.1:8081", {"ca_file": "ca.pem"}, "tls needs an https:// url"),
    ("https://bank.example", {"cert_file": "gateway.pem"}, "cert_file and key_file go together"),
    ("https://bank.example", {"ca_file": "missing.pem"}, "cannot load the CA file"),
    ("https://bank.example", {"cert_file": "ca.pem", "key_file": "gateway.key"},
     "cannot load the client certificate and key"),
    ("https://bank.example", {"ca_fle": "ca.pem"}, "unknown key (did you mean 'ca_file'?)"),
    ("https://bank.example", {"ca_file": 3}, "expected a string"),
], ids=["http url", "cert without key", "missing file", "key of another cert", "typo", "not a string"])
def test_a_wrong_tls_policy_stops_the_policy_naming_the_key(tmp_path, bank_pki, url, tls, message):
    directory = _policy_dir(tmp_path, url, {k: str(bank_pki / v) if isinstance(v, str) else v
                                            for k, v in tls.items()})
    with pytest.raises(PolicyError) as error:
        load_policy(directory)
    assert message in str(error.value) and "services.yaml" in str(error.value)


def test_the_metrics_children_of_a_service_are_made_once():
    first = metrics.ServiceMetrics("made-once")
    assert metrics.ServiceMetrics("made-once").latency is first.latency
