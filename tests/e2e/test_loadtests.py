"""The benchmark and the locust load test run end to end on a tiny load, report coherently, and leave nothing running.

These are not timing tests: no throughput or latency value is asserted, only that the commands work and that what
they write and print is consistent with itself (ratios are the quotients they name, every request is audited).
"""
from __future__ import annotations

import ast
import contextlib
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VARIANTS = {"a": "direct bank", "b": "bare proxy", "c": "gateway, 1 worker", "d": "gateway, 2 workers"}


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


@pytest.mark.timeout(240)
def test_the_benchmark_runs_end_to_end_and_its_report_is_coherent(tmp_path):
    tmp = tmp_path / "tmp"
    out = tmp_path / "bench"
    try:
        done = _run(["loadtests/bench.py", "--duration", "0.5", "--out", str(out)], tmp, timeout=180)
        assert done.returncode == 0, _explain(done)

        report = json.loads(out.with_suffix(".json").read_text())
        assert set(report["variants"]) == set(VARIANTS)
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
        moderate = report["moderate"]
        assert report["added_p50_ms"] == round(moderate["c"]["p50_ms"] - moderate["a"]["p50_ms"], 3)

        assert report["lost_audit_records"] == 0
        assert set(report["audit"]) == {"c", "d"}
        for key, audit in report["audit"].items():
            assert audit["sent"] > 0, key
            assert audit["records"] == audit["sent"], (key, audit)

        assert out.with_suffix(".png").read_bytes().startswith(PNG_SIGNATURE)
        for key, name in VARIANTS.items():
            assert f"| {key} {name} |" in done.stdout, done.stdout
    finally:
        _assert_nothing_left_running(str(tmp))
    assert not list(tmp.glob("obgw-bench-*"))  # its work directory is removed too


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
