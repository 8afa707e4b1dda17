"""Fixtures of the fault-injection tests: the processes the gateway talks to, started here so a test can break them.

Each test that breaks something starts the thing it breaks itself (a Redis, a bank, a gateway of its own) and stops
it in a `finally`, so a fault never leaks into another test. They run in the long tier (`make test-long`).
"""
from __future__ import annotations

import os

import pytest
from support.processes import Process, python

# Crashes, kills and hangs take minutes of waiting: the long tier runs them (`make test-long`, and .ci/run).
collect_ignore_glob = [] if os.environ.get("LONG_TIER") == "1" else ["test_*.py"]


@pytest.fixture(scope="module")
def odd_bank():
    """A back-end that answers garbage on request (tests/support/odd_bank.py); its base URL."""
    process = Process(python("tests/support/odd_bank.py"))
    port = int(process.wait_for_line("odd bank ready").split()[-1])
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture
def ledger_bank(tmp_path):
    """A sandbox bank of this test's own (support.faults.Sandbox), its payments kept in a ledger file we can read."""
    from support.faults import Sandbox
    bank = Sandbox(state_file=tmp_path / "ledger.jsonl")
    bank.start()
    yield bank
    bank.stop()


@pytest.fixture
def slow_bank(ledger_bank):
    """tests/support/slow_bank.py in front of `ledger_bank`'s payments service: (its URL, a client of its control
    endpoints). It holds each request as long as told (POST /control/delay?ms=N) before the bank gets it."""
    import httpx
    process = Process(python("tests/support/slow_bank.py", ledger_bank.payments_url))
    port = int(process.wait_for_line("slow bank ready").split()[-1])
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=5) as control:
            yield url, control
    finally:
        process.stop()
