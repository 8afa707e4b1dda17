"""Fixture wiring only; helpers live in tests/support.

Tests never see the developer's environment: OBGW_* and REDIS_URL are cleared, and every service a test needs
(redis-server, PKI) is started or written by the session here.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import redis

sys.path.insert(0, str(Path(__file__).parent))  # `from support import ...`

from support.authenticator import TEST_TOTP_WINDOW
from support.processes import Process, python

from gateway.pki import init_dev_pki
from gateway.store.embedded import EmbeddedRedis
from gateway.store.redis import sync_client


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch):
    for key in list(os.environ):
        if key.startswith("OBGW_") or key in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server for the session (the product's own embedded launcher)."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server):
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture
def redis_client(redis_url):
    """A client of the product's own making (`store.redis.sync_client`) on the emptied Redis."""
    client = sync_client(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Path:
    """The dev PKI made by the product's own `init_dev_pki` (CA, server cert, tpp-demo and tpp-other)."""
    directory = tmp_path_factory.mktemp("pki")
    init_dev_pki(directory)
    return directory


def _sandbox_bank(*extra: str) -> tuple[Process, tuple[str, str]]:
    """`python -m gateway.sandbox` on free ports: the process and its (accounts_url, payments_url)."""
    process = Process(python("-m", "gateway.sandbox", "--accounts-port", "0", "--payments-port", "0",
                             "--totp-window", str(TEST_TOTP_WINDOW), *extra))  # see support.authenticator
    words = process.wait_for_line("sandbox bank:").split()
    return process, (words[words.index("accounts") + 1], words[words.index("payments") + 1])


@pytest.fixture(scope="module")
def bank():
    """The sandbox bank (accounts and payments services) on free ports; yields (accounts_url, payments_url)."""
    process, urls = _sandbox_bank()
    yield urls
    process.stop()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """A sandbox bank of the module's own, its payments kept in a file we can count; ((accounts, payments), file)."""
    state = tmp_path_factory.mktemp("bank") / "ledger.jsonl"
    process, urls = _sandbox_bank("--state-file", str(state))
    yield urls, state
    process.stop()


@pytest.fixture(scope="module")
def backend():
    """The echo/slow/fail test back-end (tests/support/backend.py), which counts what reached it; its base URL."""
    process = Process(python("tests/support/backend.py"))
    port = int(process.wait_for_line("backend ready").split()[-1])
    yield f"http://127.0.0.1:{port}"
    process.stop()
