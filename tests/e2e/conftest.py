from __future__ import annotations

import pytest
from support.tpp import Browser, Tpp


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
