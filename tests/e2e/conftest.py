from __future__ import annotations

import pytest
from support.gateway import bank_gateway
from support.tpp import Browser, Tpp


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    """`obgw serve` (2 workers) in front of the sandbox bank, one per test module (a module may define its own)."""
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank)
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def module_tpp(gateway, pki):
    """tpp-demo against the module's `gateway`, kept for the whole module."""
    client = Tpp(gateway.base, pki, "tpp-demo")
    yield client
    client.close()


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
