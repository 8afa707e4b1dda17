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

The ASGI `receive` reaches ReadBody on the call (`call.receive`, put there by the endpoint): like the scope it is
the transport, not something a stage decides, and a stage still keeps no per-request attribute.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.body import MAX_BODY_BYTES, read_body, require_json
from gateway.call import CONTINUE, SCOPE_KEY, Call, Flow, Stage, required

if TYPE_CHECKING:
    from gateway.pipeline import Pipeline


class ReadBody(Stage):
    """Reads the body into `call.body` with the matched route's `max_body_bytes` (after MatchRoute)."""

    async def on_request(self, call: Call) -> Flow:
        require_json(call.method, call.headers)
        call.body = await read_body(required(call.receive, "receive"), call.routed.max_body_bytes, call.headers)
        return CONTINUE


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call: Call = scope[SCOPE_KEY]
        call.path, call.query, call.headers = scope["path"], scope["query_string"], scope["headers"]
        call.receive = receive
        if self.template is not None:
            call.route_template, call.path_params = self.template, dict(scope.get("path_params", {}))
        if not self._pipeline_reads_body:
            require_json(call.method, call.headers)
            call.body = await read_body(receive, self.max_body_bytes, call.headers)
        await self.pipeline.run(call)
        upstream = call.answer
        headers = [*upstream.headers, (b"content-length", str(len(upstream.body)).encode())]
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        await send({"type": "http.response.body", "body": upstream.body})


class ProxiedFirst:
    """Sends a proxied call (a path under `prefix` that none of the `claimed` routes matches: the consent API and
    Events, served under the same prefix) straight to `resources`, and everything else to the Starlette `router`.

    Starlette's router tries its routes one by one, a regular expression each, and wraps the endpoint in a Mount:
    ~25 matches per proxied call. Here one expression, the union of the claimed routes' own, decides it.
    """

    def __init__(self, router: ASGIApp, prefix: str, resources: ASGIApp, claimed: Sequence[BaseRoute]) -> None:
        self.app, self.prefix, self.resources = router, prefix, resources  # `app`: what it wraps, as middleware do
        patterns = [re.sub(r"\(\?P<\w+>", "(?:", route.path_regex.pattern)
                    for route in claimed if isinstance(route, Route)]
        self._claimed = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(self.prefix) and (self._claimed is None or self._claimed.match(path) is None):
                return await self.resources(scope, receive, send)
        await self.app(scope, receive, send)
