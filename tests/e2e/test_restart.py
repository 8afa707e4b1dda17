"""Nothing is lost across a restart or a crash, and a bad policy stops the start before any port is bound."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest
from support.gateway import Gateway, gateway_env, tpp_client
from support.policies import write_policy
from support.ports import free_port
from support.tpp import access_token_for

pytestmark = pytest.mark.e2e


def _calls(gw: Gateway, pki, count: int, token: str) -> list[str]:
    with tpp_client(pki, token=token) as tpp:
        responses = [tpp.get(gw.base + "/open-banking/v3.1/aisp/accounts") for _ in range(count)]
    assert {r.status_code for r in responses} == {200}
    return [r.headers["x-fapi-interaction-id"] for r in responses]


def test_audit_records_and_tokens_survive_a_restart_and_a_crash(tmp_path, pki, backend, bank):
    write_policy(tmp_path / "policies", backend, bank[0])
    env = gateway_env(tmp_path / "var", pki, tmp_path / "policies")

    first = Gateway(env, workers=1)
    token = access_token_for(first, pki)
    before = _calls(first, pki, 5, token)
    assert first.stop() == 0

    # The same token still works: clients, consents and signing keys are persisted.
    second = Gateway(env, workers=2, port=first.port)
    after_restart = _calls(second, pki, 4, token)
    # A crash: every gateway process killed at once, right after the callers got their answers.
    second.process.stop(sig=signal.SIGKILL)

    third = Gateway(env, workers=1, port=first.port)
    _calls(third, pki, 1, token)
    ids = {r["interaction_id"] for r in third.audit()}
    assert set(before) | set(after_restart) <= ids
    done = third.cli("audit", "verify")
    assert done.returncode == 0, done.stderr
    assert third.stop() == 0

    # With the gateway stopped and no REDIS_URL, the CLI says so rather than starting a Redis of its own.
    offline = subprocess.run([sys.executable, "-m", "gateway", "audit", "verify"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert offline.returncode == 2 and "REDIS_URL" in offline.stderr and offline.stdout == ""
    assert not (tmp_path / "var" / "redis" / "redis.url").exists()


def test_a_bad_policy_stops_the_start_with_its_location(tmp_path, pki, backend, bank):
    write_policy(tmp_path / "policies", backend, bank[0])
    routes = tmp_path / "policies" / "routes.yaml"
    routes.write_text(routes.read_text().replace("service: echo\n", "service: ecko\n", 1))
    port = free_port()
    env = gateway_env(tmp_path / "var", pki, tmp_path / "policies", OBGW_PORT=str(port))
    done = subprocess.run([sys.executable, "-m", "gateway", "serve"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr == (f"{tmp_path / 'policies' / 'routes.yaml'}:6:14: routes[0].service: unknown service "
                           "'ecko' (services.yaml defines: accounts, dead, echo)\n1 error in 1 file\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing was listening


def test_workers_stop_when_the_main_process_dies(tmp_path, pki, backend, bank):
    import time
    write_policy(tmp_path / "policies", backend, bank[0])
    gw = Gateway(gateway_env(tmp_path / "var", pki, tmp_path / "policies"), workers=2)
    try:
        _calls(gw, pki, 1, access_token_for(gw, pki))
        gw.process.popen.kill()  # SIGKILL to the main process only, not its group
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", gw.port)) != 0:
                    break
            time.sleep(0.2)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", gw.port)) != 0  # no orphan worker still serving
    finally:
        gw.stop()


def test_unusable_tls_files_stop_the_start_with_a_message(tmp_path, pki, backend, bank):
    write_policy(tmp_path / "policies", backend, bank[0])
    env = gateway_env(tmp_path / "var", pki, tmp_path / "policies", OBGW_TLS_KEY=str(pki / "tpp-demo.key"),
                      OBGW_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-m", "gateway", "serve"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("obgw: cannot use the TLS files")
