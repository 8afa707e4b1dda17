"""Request bodies: ReadBody reads from `call.receive` with the matched route's limit; ResourceEndpoint reads ahead
only without it."""
import asyncio
import time
from types import SimpleNamespace

import pytest

from gateway.call import CONTINUE, SCOPE_KEY, STOP, Call, Flow, Stage, Upstream
from gateway.errors import Refusal
from gateway.pipeline import Pipeline
from gateway.pipeline.endpoint import (
    MAX_BODY_BYTES,
    ReadBody,
    ResourceEndpoint,
    read_body,
)


class Receive:
    """An ASGI receive giving `chunks` one message each; counts what was asked of it."""

    def __init__(self, *chunks: bytes, disconnect: bool = False) -> None:
        self.messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or disconnect}
                         for i, c in enumerate(chunks)]
        if disconnect:
            self.messages.append({"type": "http.disconnect"})
        self.calls = 0

    async def __call__(self) -> dict:
        self.calls += 1
        return self.messages.pop(0)


class Route(Stage):
    """Plays MatchRoute: gives the call a route with `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def on_request(self, call: Call) -> Flow:
        call.route = SimpleNamespace(max_body_bytes=self.limit)
        return CONTINUE


class Answer(Stage):
    """Plays Forward: answers with what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def on_request(self, call: Call) -> Flow:
        self.bodies.append(call.body)
        call.upstream = Upstream(200, [], call.body)
        return STOP


JSON = (b"content-type", b"application/json")


def _run(endpoint, receive, headers=(JSON,), method="POST"):
    call = Call(interaction_id="i", ts="t", started=time.perf_counter(), method=method)
    scope = {"type": "http", "path": "/x", "query_string": b"", "headers": list(headers), SCOPE_KEY: call}
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(endpoint(scope, receive, send))
    return sent


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    receive = Receive(b"x" * 10)
    with pytest.raises(Refusal) as refused:
        asyncio.run(read_body(receive, 5, [(b"content-length", b"10")]))
    assert refused.value.reason == "request.too_large" and refused.value.status == 413
    assert receive.calls == 0


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit():
    receive = Receive(b"a" * 4, b"b" * 4, b"c" * 4, b"d" * 4)
    with pytest.raises(Refusal) as refused:
        asyncio.run(read_body(receive, 10))
    assert refused.value.reason == "request.too_large"
    assert receive.calls == 3  # the third chunk took it over; the fourth was never asked for


def test_a_body_of_exactly_the_limit_is_read_whole():
    assert asyncio.run(read_body(Receive(b"12345", b"67890"), 10, [(b"content-length", b"10")])) == b"1234567890"


def test_a_body_cut_short_is_incomplete():
    with pytest.raises(Refusal) as refused:
        asyncio.run(read_body(Receive(b"{\"Data\"", disconnect=True), 100))
    assert refused.value.reason == "request.incomplete"


def test_read_body_reads_with_the_route_limit_once_the_route_is_known():
    answer = Answer()
    endpoint = ResourceEndpoint(Pipeline((Route(8), ReadBody(), answer)))
    sent = _run(endpoint, Receive(b"12345678"))
    assert sent[1]["body"] == b"12345678" and answer.bodies == [b"12345678"]
    for receive, headers in ((Receive(b"123456789"), [JSON, (b"content-length", b"9")]),
                             (Receive(b"12345", b"6789"), [JSON, (b"transfer-encoding", b"chunked")])):
        with pytest.raises(Refusal) as refused:
            _run(endpoint, receive, headers)
        assert refused.value.reason == "request.too_large"
    assert answer.bodies == [b"12345678"]  # nothing refused went on


def test_nothing_is_read_for_a_call_refused_before_read_body():
    class NoRoute(Stage):
        async def on_request(self, call: Call) -> Flow:
            raise Refusal("route.not_found")

    receive = Receive(b"x")
    with pytest.raises(Refusal):
        _run(ResourceEndpoint(Pipeline((NoRoute(), ReadBody(), Answer()))), receive)
    assert receive.calls == 0


def test_without_read_body_the_endpoint_reads_first_with_its_fixed_limit():
    answer = Answer()
    endpoint = ResourceEndpoint(Pipeline((answer,)), template="/consents")
    assert MAX_BODY_BYTES == 65_536
    _run(endpoint, Receive(b"x" * MAX_BODY_BYTES))
    assert answer.bodies == [b"x" * MAX_BODY_BYTES]
    with pytest.raises(Refusal) as refused:
        _run(endpoint, Receive(), [JSON, (b"content-length", str(MAX_BODY_BYTES + 1).encode())])
    assert refused.value.reason == "request.too_large"


@pytest.mark.parametrize("headers", [(), ((b"content-type", b"text/plain"),), (JSON, JSON),
                                     ((b"content-type", b"application/json-patch+json"),)])
@pytest.mark.parametrize("reads_body", [True, False])
def test_a_body_that_is_not_one_json_document_is_415_before_a_byte_is_read(headers, reads_body):
    answer = Answer()
    stages = (Route(100), ReadBody(), answer) if reads_body else (answer,)
    receive = Receive(b'{"Data": {}}')
    with pytest.raises(Refusal) as refused:
        _run(ResourceEndpoint(Pipeline(stages)), receive, headers)
    assert (refused.value.reason, refused.value.status) == ("request.unsupported_media_type", 415)
    assert receive.calls == 0 and answer.bodies == []


def test_a_get_or_delete_needs_no_content_type():
    for method in ("GET", "DELETE"):
        answer = Answer()
        _run(ResourceEndpoint(Pipeline((Route(100), ReadBody(), answer))), Receive(b""), (), method)
        assert answer.bodies == [b""]


def test_read_body_reads_the_receive_the_endpoint_put_on_the_call():
    call = Call(interaction_id="i", ts="t", started=0.0, method="POST", headers=[JSON],
                route=SimpleNamespace(max_body_bytes=10), receive=Receive(b"12", b"345"))
    assert asyncio.run(ReadBody().on_request(call)) is CONTINUE
    assert call.body == b"12345"


def test_the_endpoint_puts_the_transport_on_the_call():
    seen = []

    class Look(Stage):
        async def on_request(self, call: Call) -> Flow:
            seen.append(call.receive)
            call.upstream = Upstream(204, [], b"")
            return STOP

    receive = Receive(b"")
    _run(ResourceEndpoint(Pipeline((Look(),)), template="/consents"), receive, method="GET")
    assert seen == [receive]
