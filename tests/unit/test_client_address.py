"""The address a caller is counted under (client_address.py), who may say it (TransportIdentity), and the per-address
throttle of requests without a client certificate (AnonymousThrottle)."""
from __future__ import annotations

import asyncio
import ipaddress

import pytest

from gateway.call import SCOPE_KEY, Call, ClientCertificate
from gateway.client_address import source_of
from gateway.errors import Refusal
from gateway.pipeline import middleware
from gateway.pipeline.middleware import AnonymousThrottle, TransportIdentity

PROXY = ipaddress.ip_network("10.0.0.5/32")


@pytest.mark.parametrize("client, counted_as", [
    (("203.0.113.9", 5000), "203.0.113.9"),
    (("2001:db8:1:2:aaaa::1", 5000), "2001:db8:1:2::/64"),       # one host's /64 is one caller
    (("2001:db8:1:2:ffff::9", 5000), "2001:db8:1:2::/64"),
    (("::ffff:203.0.113.9", 5000), "203.0.113.9"),
    (None, "unknown"),
    (("not an address", 0), "unknown"),
])
def test_the_address_a_caller_is_counted_under(client, counted_as):
    assert source_of({"client": client}) == counted_as


def _call() -> Call:
    return Call(interaction_id="i", ts="t", started=0.0, method="GET")


def _seen_client(peer, headers, proxies=(PROXY,)):
    """The scope["client"] the app behind TransportIdentity sees for a request from `peer` with `headers`."""
    seen = {}

    async def app(scope, receive, send):
        seen["client"] = scope["client"]

    verifier = object()  # the proxy mode is on; no Client-Cert is sent, so it is never asked
    scope = {"type": "http", "client": peer, "headers": headers, SCOPE_KEY: _call()}
    asyncio.run(TransportIdentity(app, proxies, verifier)(scope, None, None))
    return seen["client"]


def test_a_trusted_proxy_says_which_client_it_forwards_with_the_entry_it_appended_last():
    headers = [(b"x-forwarded-for", b"198.51.100.1, 192.0.2.77")]  # the first is the client's own word
    assert _seen_client(("10.0.0.5", 4000), headers) == ("192.0.2.77", 0)
    two_lines = [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"192.0.2.78")]
    assert _seen_client(("10.0.0.5", 4000), two_lines) == ("192.0.2.78", 0)


@pytest.mark.parametrize("peer, headers, proxies", [
    (("203.0.113.9", 4000), [(b"x-forwarded-for", b"192.0.2.77")], (PROXY,)),   # not the proxy
    (("10.0.0.5", 4000), [(b"x-forwarded-for", b"192.0.2.77")], ()),           # no proxy configured
    (("10.0.0.5", 4000), [(b"x-forwarded-for", b"unknown")], (PROXY,)),       # not an address
    (("10.0.0.5", 4000), [], (PROXY,)),
])
def test_nobody_else_picks_the_address_and_a_bad_one_is_not_taken(peer, headers, proxies):
    assert _seen_client(peer, headers, proxies) == peer


def _request(throttle: AnonymousThrottle, peer: str, certificate=None) -> None:
    async def app(scope, receive, send):
        pass

    call = _call()
    call.certificate = certificate
    throttle.app = app
    asyncio.run(throttle({"type": "http", "client": (peer, 1), SCOPE_KEY: call}, None, None))


def test_anonymous_requests_beyond_the_burst_are_refused_with_retry_after_until_the_bucket_refills(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(middleware.time, "monotonic", lambda: now[0])
    throttle = AnonymousThrottle(None, rate=2, burst=3)
    for _ in range(3):
        _request(throttle, "203.0.113.9")
    with pytest.raises(Refusal) as refused:
        _request(throttle, "203.0.113.9")
    assert refused.value.reason == "request.throttled" and refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "1"}
    _request(throttle, "203.0.113.10")  # another address has its own bucket
    certificate = ClientCertificate("x5t", "CN=tpp", "CN=ca", None)
    for _ in range(10):
        _request(throttle, "203.0.113.9", certificate)  # a verified certificate is never counted here
    now[0] += 0.5  # one request's worth at 2/s
    _request(throttle, "203.0.113.9")
    with pytest.raises(Refusal):
        _request(throttle, "203.0.113.9")


def test_the_buckets_are_bounded_forgetting_the_least_recently_seen(monkeypatch):
    monkeypatch.setattr(middleware.time, "monotonic", lambda: 1000.0)
    throttle = AnonymousThrottle(None, rate=1, burst=1, max_sources=100)
    _request(throttle, "203.0.113.1")
    for n in range(150):
        _request(throttle, f"198.51.100.{n}" if n < 100 else f"192.0.2.{n - 100}")
    assert len(throttle._buckets) == 100
    _request(throttle, "203.0.113.1")  # forgotten, so a full bucket again (its memory is what was bounded)
