"""Anonymous traffic (no client certificate) cannot grow Redis (issue 14 item 3): 10,000 requests from one address,
over kept-alive TLS connections, leave no key behind but their audit records, and past a generous per-address limit
are refused 429 with Retry-After, audited; a customer at another address is served meanwhile."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from support.gateway import bank_gateway, client_context
from support.redis_server import RedisServer

from gateway.store import names

pytestmark = pytest.mark.e2e

REQUESTS, CONNECTIONS = 10_000, 8
PATHS = ("/login", "/consents", "/open-banking/v3.1/aisp/accounts")  # the last a TPP endpoint, without a certificate
ACCESSES = names.consent_accesses("").encode()


@pytest.fixture(scope="module")
def gateway_redis(tmp_path_factory):
    """The gateway's Redis, of this module alone: (its URL, a client)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    client = redis.Redis.from_url(server.url)
    client.config_set("appendfsync", "everysec")  # 10,000 audit records: no fsync each
    yield server.url, client
    client.close()
    server.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank, gateway_redis):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank, REDIS_URL=gateway_redis[0])
    yield gw
    assert gw.stop() == 0


def _footprint(client: redis.Redis) -> tuple[int, int]:
    """(keys, bytes) of what Redis holds besides the audit stream and the consent-accesses lists."""
    found = [name for name in client.scan_iter(count=1000)
             if name != names.AUDIT_STREAM.encode() and not name.startswith(ACCESSES)]
    return len(found), sum(client.memory_usage(name, samples=0) or 0 for name in found)


def _browser(pki, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(verify=client_context(pki / "ca.pem"), local_address=address)
    return httpx.Client(transport=transport, timeout=30)


def test_ten_thousand_anonymous_requests_leave_no_key_behind_and_are_throttled_per_address(gateway, pki,
                                                                                           gateway_redis):
    client = gateway_redis[1]
    keys_before, bytes_before = _footprint(client)
    statuses: dict[int, int] = {}
    throttled: list[httpx.Response] = []
    lock = threading.Lock()

    def browse(n: int) -> None:
        with _browser(pki, "127.0.5.1") as http:  # one keep-alive connection, many requests
            for i in range(n, REQUESTS, CONNECTIONS):
                answer = http.get(gateway.base + PATHS[i % len(PATHS)])
                with lock:
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                    if answer.status_code == 429 and len(throttled) < 5:
                        throttled.append(answer)

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(browse, range(CONNECTIONS)))  # a failed request fails the test here
    assert sum(statuses.values()) == REQUESTS, statuses

    keys_after, bytes_after = _footprint(client)
    assert keys_after - keys_before <= 2, f"{keys_after - keys_before} new keys for {REQUESTS} requests"
    assert bytes_after - bytes_before < 64 * 1024, f"{bytes_after - bytes_before} bytes for {REQUESTS} requests"

    # Far past the limit, the address was refused; what it was allowed was answered as usual.
    assert set(statuses) <= {200, 303, 401, 429} and statuses[429] > REQUESTS // 2, statuses
    assert statuses[200] and statuses[303] and statuses[401]
    for answer in throttled:
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.json()["Errors"][0]["ErrorCode"] == "OBGW.Rules.RateLimitExceeded"
    ids = {a.headers["x-fapi-interaction-id"] for a in throttled}
    assert {(r["status"], r["reason"]) for r in gateway.audit() if r["interaction_id"] in ids} == {
        (429, "request.throttled")}

    with _browser(pki, "127.0.5.2") as neighbour:  # a customer at another address is served
        assert neighbour.get(gateway.base + "/login").status_code == 200
