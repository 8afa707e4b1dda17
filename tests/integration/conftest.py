"""Fixtures of the integration tests (the session Redis and the PKI are in tests/conftest.py)."""
from __future__ import annotations

import pytest
from support.redis_server import RedisServer


@pytest.fixture
def server(tmp_path):
    """A redis-server of this test's own, that can be stopped and started again on the same address (an outage)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()
