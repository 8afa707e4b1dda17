"""The ASGI endpoint behind `/open-banking/`: puts the request on the Call, runs the pipeline, sends the answer;
and ReadBody, the stage that reads a proxied call's body with its route's limit.

Why a stage reads the body: the limit is the route's `max_body_bytes`, and the route is known only once MatchRoute
has run inside the pipeline. So the endpoint does not read ahead. ReadBody, right after MatchRoute, reads with the
route's limit. A declared Content-Length over the limit is refused before a byte is read; a chunked body is refused
as soon as what has arrived passes it. A call refused earlier (no such route) has nothing read at all. It must come
before Admit, so that a call refused for its body is never charged to a rate limit or an unattended allowance; it
comes before the token checks too, as the whole body used to be read before anything, so a body cut short is
`request.incomplete` whoever sent it. What an anonymous caller can make the gateway read is bounded by the route's
limit, 64 KiB unless a route says otherwise. A pipeline without ReadBody (the consent API: routed by Starlette, no
RoutePolicy) has its body read here, before the pipeline, with the fixed `MAX_BODY_BYTES`.

The ASGI `receive` reaches ReadBody through a context variable set while the pipeline runs (each request runs in
its own asyncio task, so the value is that request's). Call holds what the stages decide; `receive` is the
transport, like the ASGI scope, and a stage still keeps no per-request attribute.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING

from gateway.errors import Refusal
from gateway.pipeline.call import SCOPE_KEY, Call

if TYPE_CHECKING:
    from gateway.pipeline import Pipeline

MAX_BODY_BYTES = 65_536  # the limit where no route policy gives one (the consent API): UK OB bodies are a few KB
CONTENT_LENGTH = b"content-length"
CONTENT_TYPE = b"content-type"
JSON_MEDIA_TYPE = b"application/json"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

Receive = Callable[[], Awaitable[dict]]
_RECEIVE: ContextVar[Receive] = ContextVar("obgw.receive")


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The request's Content-Length, if it declares one (the HTTP server has already refused a malformed one)."""
    for key, value in headers:
        if key == CONTENT_LENGTH:
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_body(receive: Receive, limit: int, headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """The whole body, or `request.too_large` once it passes `limit`. A Content-Length over the limit in `headers`
    is refused before anything is read."""
    declared = declared_length(headers)
    if declared is not None and declared > limit:
        raise Refusal("request.too_large")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal("request.incomplete")  # never forward half a request (a payment, say)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal("request.too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def require_json(method: str, headers: Iterable[tuple[bytes, bytes]]) -> None:
    """UK OB Read/Write API §Content-Type: a request with a body is `application/json` (a charset parameter may
    follow). Anything else is refused before a byte of it is read (RFC 9110 §15.5.16: 415), so a form or text body
    can never reach a JSON check, nor the bank."""
    if method not in BODY_METHODS:
        return
    declared = [value for key, value in headers if key == CONTENT_TYPE]
    if len(declared) != 1 or declared[0].split(b";", 1)[0].strip().lower() != JSON_MEDIA_TYPE:
        raise Refusal("request.unsupported_media_type", headers={"Accept": "application/json"}, path="Content-Type")


class ReadBody:
    """Reads the body into `call.body` with the matched route's `max_body_bytes` (after MatchRoute)."""

    async def on_request(self, call: Call) -> None:
        require_json(call.method, call.headers)
        call.body = await read_body(_RECEIVE.get(), call.route.max_body_bytes, call.headers)


class ResourceEndpoint:
    """Runs a pipeline for the call and sends what its last stage left in `call.upstream`.

    `template` names the route for the audit when Starlette routed the call (the consent API); proxied routes are
    named by MatchRoute instead. The body is read by the pipeline's ReadBody stage if it has one, else here with
    `max_body_bytes` before the pipeline runs.
    """

    def __init__(self, pipeline: Pipeline, max_body_bytes: int = MAX_BODY_BYTES, template: str | None = None) -> None:
        self.pipeline = pipeline
        self.max_body_bytes = max_body_bytes
        self.template = template
        self._pipeline_reads_body = any(isinstance(stage, ReadBody) for stage in pipeline.stages)

    async def __call__(self, scope, receive, send) -> None:
        call: Call = scope[SCOPE_KEY]
        call.path, call.query, call.headers = scope["path"], scope["query_string"], scope["headers"]
        if self.template is not None:
            call.route_template, call.path_params = self.template, dict(scope.get("path_params", {}))
        if not self._pipeline_reads_body:
            require_json(call.method, call.headers)
            call.body = await read_body(receive, self.max_body_bytes, call.headers)
        reading = _RECEIVE.set(receive)
        try:
            await self.pipeline.run(call)
        finally:
            _RECEIVE.reset(reading)
        upstream = call.upstream
        headers = [*upstream.headers, (b"content-length", str(len(upstream.body)).encode())]
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        await send({"type": "http.response.body", "body": upstream.body})
