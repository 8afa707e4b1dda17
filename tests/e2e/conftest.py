from __future__ import annotations

import pytest
from support.processes import Process, python
from support.tpp import Browser, Tpp


@pytest.fixture(scope="module")
def backend():
    """The echo/slow/fail test back-end, a real HTTP server; yields its base URL."""
    process = Process(python("tests/support/backend.py"))
    port = int(process.wait_for_line("backend ready").split()[-1])
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture(scope="module")
def bank():
    """The sandbox bank (accounts and payments services) on free ports; yields (accounts_url, payments_url)."""
    process = Process(python("-m", "gateway.sandbox", "--accounts-port", "0", "--payments-port", "0"))
    words = process.wait_for_line("sandbox bank:").split()
    yield words[words.index("accounts") + 1], words[words.index("payments") + 1]
    process.stop()


@pytest.fixture
def tpp(gateway, pki):
    """tpp-demo, on Authlib's client, against the module's `gateway`."""
    client = Tpp(gateway.base, pki, "tpp-demo")
    yield client
    client.close()


@pytest.fixture
def browser(gateway, pki):
    """A customer's cookie-keeping HTTP client against the module's `gateway`."""
    client = Browser(gateway.base, pki)
    yield client
    client.close()
