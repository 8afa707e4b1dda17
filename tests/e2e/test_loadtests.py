"""The benchmark and the locust load test run end to end on a tiny load, report coherently, and leave nothing running.

These are not timing tests: no throughput or latency value is asserted, only that the commands work and that what
they write and print is consistent with itself (ratios are the quotients they name, every request is audited).
"""
from __future__ import annotations

import ast
import base64
import contextlib
import csv
import json
import os
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.gateway import tpp_client
from support.tiers import long_tier

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "loadtests"))

import edge  # noqa: E402
import stage_budget  # noqa: E402
from stack import Stack, free_port  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VARIANTS = {"a": "direct bank", "b": "bare proxy", "c": "gateway, 1 worker", "d": "gateway, 2 workers",
            "e": "edge + gateway, 1 worker"}
ROW_KINDS = ("server ", "middleware ", "app ", "stage ", "audit ", "other")
NO_CERTIFICATE = "A client certificate is required"


def _processes_mentioning(marker: str) -> list[str]:
    """Live processes whose command line, environment or working directory mention `marker` (Linux /proc)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        proc = Path("/proc", entry)
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if not cmdline:  # a kernel thread or a zombie: nothing left running
            continue
        seen = [cmdline]
        with contextlib.suppress(OSError):  # another user's process: its command line is all there is to see
            seen.append((proc / "environ").read_bytes())
        with contextlib.suppress(OSError):
            seen.append(os.readlink(proc / "cwd").encode())
        if any(needle in part for part in seen):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(f"{entry}: {command}")
    return found


def _assert_nothing_left_running(marker: str, grace: float = 5.0) -> None:
    """Every process started under `marker` is gone (a short grace for SIGTERM'd children to finish exiting)."""
    deadline = time.monotonic() + grace
    while (left := _processes_mentioning(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], "processes left running:\n" + "\n".join(left)


def _run(args: list[str], tmp: Path, timeout: float) -> subprocess.CompletedProcess:
    """A loadtests command from the repository root, its temporary files (and so every child's TMPDIR) under `tmp`."""
    tmp.mkdir()
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp)},
                          capture_output=True, text=True, timeout=timeout, check=False)


def _explain(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"


@long_tier
@pytest.mark.timeout(240)
def test_the_benchmark_runs_end_to_end_and_its_report_is_coherent(tmp_path):
    tmp = tmp_path / "tmp"
    out = tmp_path / "bench"
    try:
        done = _run(["loadtests/bench.py", "--duration", "0.5", "--stages", "--out", str(out)], tmp, timeout=180)
        assert done.returncode == 0, _explain(done)

        report = json.loads(out.with_suffix(".json").read_text())
        edged = edge.find_edge() is not None
        assert set(report["variants"]) == set(VARIANTS) - ({"e"} if not edged else set())
        if not edged:
            assert "variant e needs an edge" in done.stdout and report["e_over_c"] is None
        for key, variant in report["variants"].items():
            assert variant["name"] == VARIANTS[key]
            assert variant["rps"] > 0, key
            assert variant["p50_ms"] <= variant["p90_ms"] <= variant["p99_ms"], key
            assert sum(variant["errors"].values()) == 0, (key, variant["errors"])
            assert set(variant["statuses"]) == {"200"}, (key, variant["statuses"])

        for name in ("c_over_b", "c_over_a", "d_over_c", "added_p50_ms", "lost_audit_records"):
            assert name in report, name
        rps = {key: variant["rps"] for key, variant in report["variants"].items()}
        assert report["c_over_b"] == round(rps["c"] / rps["b"], 3)
        assert report["c_over_a"] == round(rps["c"] / rps["a"], 3)
        assert report["d_over_c"] == round(rps["d"] / rps["c"], 3)
        if edged:
            assert report["e_over_c"] == round(rps["e"] / rps["c"], 3)
        moderate = report["moderate"]
        assert report["added_p50_ms"] == round(moderate["c"]["p50_ms"] - moderate["a"]["p50_ms"], 3)

        assert report["lost_audit_records"] == 0
        assert set(report["audit"]) == {"c", "d", "e"} - ({"e"} if not edged else set())
        for key, audit in report["audit"].items():
            assert audit["sent"] > 0, key
            assert audit["records"] == audit["sent"], (key, audit)

        assert out.with_suffix(".png").read_bytes().startswith(PNG_SIGNATURE)
        for key in report["variants"]:
            assert f"| {key} {VARIANTS[key]} |" in done.stdout, done.stdout

        for key, variant in (("stages", "c"), ("stages_e", "e")):
            if variant not in report["variants"]:
                continue
            budget = report[key]
            rows = budget["rows"]
            assert sum(row["samples"] for row in rows) == budget["samples"] > 0, budget
            # every sample in exactly one row, so the rows add up to the worker's measured CPU per call
            assert round(sum(row["us_per_call"] for row in rows), 1) == budget["cpu_us_per_call"] > 0, budget
            assert all(row["name"].startswith(ROW_KINDS) for row in rows), rows
            assert any(row["name"].startswith("server ") for row in rows), rows  # a 0.5 s run may miss a stage
            assert f"CPU budget of variant {variant}'s gateway worker: {budget['cpu_us_per_call']:.1f} µs per call" \
                in done.stdout, done.stdout
    finally:
        _assert_nothing_left_running(str(tmp))
    assert not list(tmp.glob("obgw-bench-*"))  # its work directory is removed too


@long_tier
@pytest.mark.timeout(300)
def test_the_locust_load_test_runs_end_to_end_with_every_request_audited(tmp_path):
    # 8 users over the weights 6/2/1/1/1 give exactly one BatchRefresh user (locust's dispatcher is deterministic),
    # spawned at once (spawn rate 8). It waits at most 1.5 s between calls, so its 5th call (the first over the
    # unattended allowance of 4) starts at most 6 s after it does: 10 s leaves 4 s for the spawn and the answers.
    tmp = tmp_path / "tmp"
    out = tmp_path / "locust"
    try:
        done = _run(["loadtests/run_locust.py", "--users", "8", "--spawn-rate", "8", "--run-time", "10s",
                     "--tpps", "2", "--out", str(out)], tmp, timeout=240)
        assert done.returncode == 0, _explain(done)

        html = out.with_suffix(".html").read_text()
        assert html.lstrip().lower().startswith(("<!doctype html", "<html")), html[:200]
        assert "</html>" in html.lower()

        audit = re.search(r"^audit: (\d+) records for the run's (\d+) requests", done.stdout, re.MULTILINE)
        assert audit, done.stdout
        records, requests = int(audit[1]), int(audit[2])
        assert requests > 0
        assert records == requests

        refusals = re.search(r"predicted refusals: (\{.*\})$", done.stdout, re.MULTILINE)
        assert refusals, done.stdout
        predicted = ast.literal_eval(refusals[1])
        assert predicted.get("unattended allowance", 0) >= 1, predicted

        with Path(f"{out}_failures.csv").open(newline="") as f:
            rows = list(csv.reader(f))
        assert rows[1:] == [], rows  # the header only
    finally:
        _assert_nothing_left_running(str(tmp))
    assert not list(tmp.glob("obgw-locust-*"))


def test_the_benchmark_offers_a_quick_option():
    done = subprocess.run([sys.executable, "loadtests/bench.py", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout


def test_a_stage_budget_gives_each_sample_to_its_innermost_part_and_adds_up():
    raw = "\n".join([
        # the aiohttp client a stage calls is the client's, not the stage's
        "run (uvicorn/server.py:1);Forward.on_request (gateway/pipeline/forward.py:9);"
        "ClientSession._request (aiohttp/client.py:5) 5",
        # what a stage does through an unnamed library (redis-py) stays the stage's; closures in a hook are its own
        "run (uvicorn/server.py:1);Admit.on_request.<locals>.charge (gateway/pipeline/admission.py:3);"
        "AsyncScript.__call__ (gateway/store/redis.py:2);Redis.execute (redis/asyncio/client.py:7) 3",
        "run (uvicorn/server.py:1);Audit.__call__.<locals>.hold (gateway/pipeline/middleware.py:1);"
        "RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:4) 2",
        "run (uvicorn/server.py:1);Audit.__call__ (gateway/pipeline/middleware.py:1);"
        "AuditChain.append (gateway/audit/chain.py:8) 2",
        "run (uvicorn/server.py:1);ResourceEndpoint.__call__ (gateway/pipeline/endpoint.py:5);"
        "Pipeline.run (gateway/pipeline/__init__.py:3) 1",
        "run (uvicorn/server.py:1);Runner.run (asyncio/runners.py:118) 4",
        "Process.pong (uvicorn/supervisors/multiprocess.py:3);Connection._recv (multiprocessing/connection.py:2) 1",
        "_bootstrap (threading.py:1) 1",
    ])
    budget = stage_budget.budget(raw, 100.0)
    rows = {row["name"]: row for row in budget["rows"]}
    assert {name: row["samples"] for name, row in rows.items()} == {
        "server forwarding client": 5, "stage Admit": 3, "server HTTP (uvicorn, httptools)": 2, "audit AuditChain": 2,
        "app ResourceEndpoint": 1, "server event loop": 4, "other": 2}
    assert budget["samples"] == 19
    assert round(sum(row["us_per_call"] for row in rows.values()), 1) == 100.0
    assert rows["server forwarding client"]["us_per_call"] == 26.3  # 5/19 of 100, the rounding left to the largest
    assert list(rows)[0].startswith("server ") and list(rows)[-1] == "other"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("edge-stack")) as running:
        yield running


@pytest.mark.parametrize("kind", [edge.NginxEdge, edge.HAProxyEdge], ids=lambda kind: kind.name)
def test_the_benchmarks_edge_forwards_only_the_certificate_it_verified(stack, tmp_path, kind):
    binary = edge.installed("haproxy" if kind is edge.HAProxyEdge else "nginx")
    if binary is None or (kind is edge.NginxEdge and not edge.NJS_MODULE.exists()):
        message = f"{kind.name} is not installed ({edge.INSTALL})"
        if os.environ.get("CI") == "true" and kind is edge.NginxEdge:  # HAProxy is only the fallback
            pytest.fail(message)
        pytest.skip(message)
    upstream = free_port()
    gateway = stack.gateway_behind_edge(upstream)
    try:
        with kind(binary, tmp_path / "edge", stack.port, upstream, stack.pki):
            url = f"{stack.base}/open-banking/v3.1/aisp/accounts"
            der = base64.b64encode(ssl.PEM_cert_to_DER_cert((stack.pki / "tpp-demo.pem").read_text())).decode()
            with tpp_client(stack.pki, None) as anonymous, tpp_client(stack.pki, "tpp-demo") as tpp:
                forged = anonymous.get(url, headers={"Client-Cert": f":{der}:"})
                presented = tpp.get(url, headers={"Client-Cert": ":AAAA:"})
    finally:
        gateway.stop()
    # no certificate at the handshake: a Client-Cert the caller wrote itself never reaches the gateway
    assert forged.status_code == 401 and NO_CERTIFICATE in forged.text, forged.text
    # a verified one is forwarded in place of the caller's, so the call gets past mutual TLS (to the missing token)
    assert presented.status_code == 401 and NO_CERTIFICATE not in presented.text, presented.text
    assert "Invalid" not in presented.text and "Client-Cert" not in presented.text, presented.text
