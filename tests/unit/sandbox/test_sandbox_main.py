"""`python -m gateway.sandbox` serves both services from one process and stops cleanly on a signal."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
BANNER = re.compile(r"^sandbox bank: accounts (http://\S+) payments (http://\S+)$")


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no banner within {timeout} s")
    return proc.stdout.readline().strip()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serves_both_services_on_ephemeral_ports_and_exits_on_signal(sig: signal.Signals) -> None:
    command = [sys.executable, "-m", "gateway.sandbox", "--host", "127.0.0.1"]
    command += ["--accounts-port", "0", "--payments-port", "0"]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            match = BANNER.match(read_line(proc, timeout=15))
            assert match, "unexpected banner"
            accounts, payments = match.groups()
            assert accounts != payments and not accounts.endswith(":0") and not payments.endswith(":0")
            for base in (accounts, payments):
                assert httpx.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
            login = httpx.post(f"{accounts}/internal/authenticate", json={"username": "bob", "password": "bob-pass"})
            assert login.json()["customer_id"] == "bob"
            started = time.monotonic()
            proc.send_signal(sig)
            assert proc.wait(timeout=5) == 0
            assert time.monotonic() - started < 5
            assert proc.stderr is not None and proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
