"""`obgw demo-cluster` (CONTRACT §13) as an operator runs it: Redis Cluster 3+3, two gateway nodes, the HAProxy edge,
the sandbox bank. The whole TPP flow works through the edge with the edge's issuer; the CLI finds the cluster; a node
killed mid-load leaves the edge serving through the other, no answered call's audit record is lost and the chain
verifies. Free ports throughout, so it never meets a running demo."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from support.gateway import client_context
from support.ports import free_port
from support.tpp import Tpp

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, pki):
    if not any(Path(p, "haproxy").exists() for p in ("/usr/sbin", "/usr/bin")):
        pytest.skip("haproxy is not installed (make demo-cluster installs it)")
    var = tmp_path_factory.mktemp("var")
    port, admin = free_port(), [free_port(), free_port()]
    command = [sys.executable, "-m", "gateway", "demo-cluster", "--port", str(port), "--var-dir", str(var),
               "--client-ca", str(pki / "ca.pem"), "--tls-cert", str(pki / "server.pem"),
               "--tls-key", str(pki / "server.key"), "--admin-ports", ",".join(map(str, admin)),
               "--accounts-port", str(free_port()), "--payments-port", str(free_port())]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline() if process.stdout else ""
            lines.append(line)
            if "obgw demo-cluster is running" in line:
                break
        else:
            raise AssertionError("demo-cluster did not start:\n" + "".join(lines[-40:]))
        yield {"base": f"https://127.0.0.1:{port}", "var": var, "admin": admin, "process": process}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def _cli(demo, pki, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OBGW_VAR_DIR": str(demo["var"]), "OBGW_CLIENT_CA": str(pki / "ca.pem")}
    env.pop("REDIS_URL", None)  # the CLI finds the cluster through var/redis/redis.url
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_whole_tpp_flow_works_through_the_edge_and_the_cli_finds_the_cluster(demo, pki):
    tpp = Tpp(demo["base"], pki, "tpp-demo")
    try:
        assert tpp.issuer == demo["base"]
        token = tpp.consent_token(["ReadAccountsBasic"])
        answer = tpp.get(ACCOUNTS, token)
        assert answer.status_code == 200, answer.text
    finally:
        tpp.close()
    listed = _cli(demo, pki, "clients", "list")
    assert listed.returncode == 0 and "tpp-demo" in listed.stdout, listed.stderr
    verified = _cli(demo, pki, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_client_sent_client_cert_header_is_not_believed(demo, pki):
    """The edge drops what a TPP sends as Client-Cert: tpp-other cannot pose as tpp-demo with the header."""
    forged = (pki / "tpp-demo.pem").read_text().split("-----")[2].replace("\n", "")
    with httpx.Client(verify=client_context(pki / "ca.pem", pki / "tpp-other.pem", pki / "tpp-other.key")) as http:
        answer = http.post(demo["base"] + "/oauth2/token", headers={"Client-Cert": f":{forged}:"},
                           data={"grant_type": "client_credentials", "scope": "accounts", "client_id": "tpp-demo"})
    assert answer.status_code == 401, answer.text


def test_a_node_killed_mid_load_leaves_the_edge_serving_and_no_audit_record_lost(demo, pki):
    assert _cli(demo, pki, "clients", "set-tier", "tpp-demo", "unlimited").returncode == 0  # not the rate limit here
    tpp = Tpp(demo["base"], pki, "tpp-demo")
    token = tpp.consent_token(["ReadAccountsBasic"])["access_token"]
    context = client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")
    headers = {"Authorization": f"Bearer {token}", "x-fapi-customer-ip-address": "198.51.100.7"}
    node = _node_process(demo["admin"][0])

    def read(index: int) -> tuple[int | None, str | None]:
        time.sleep(0.05)  # 4 callers at a steady pace: the kill falls mid-load
        if index == 40:
            node.kill()  # SIGKILL to the node's supervisor; its workers die with it (PR_SET_PDEATHSIG)
        try:
            with httpx.Client(verify=context, timeout=10) as http:
                answer = http.get(demo["base"] + ACCOUNTS, headers=headers)
            return answer.status_code, answer.headers.get("x-fapi-interaction-id")
        except httpx.HTTPError:
            return None, None

    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(read, range(160)))
    finally:
        tpp.close()
    late = [status for status, _ in results[100:]]
    assert late.count(200) == len(late), [s for s in late if s != 200]  # the edge took the dead node out: all served
    answered = [interaction for status, interaction in results if status is not None and interaction]
    found = _cli(demo, pki, "audit", "search", "--json", "--client", "tpp-demo")
    assert found.returncode == 0, found.stderr
    recorded = found.stdout
    missing = [interaction for interaction in answered if interaction not in recorded]
    assert missing == [], missing
    verified = _cli(demo, pki, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _node_process(admin_port: int) -> psutil.Process:
    """The gateway node serving this admin port (its supervisor: killing it takes its workers with it)."""
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            environ = process.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if environ.get("OBGW_ADMIN_PORT") == str(admin_port) and "serve" in process.cmdline():
            return process
    raise AssertionError(f"no gateway node with admin port {admin_port}")
