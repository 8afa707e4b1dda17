"""The ASGI endpoint behind `/open-banking/`: reads the request into the Call, runs the pipeline, sends the answer."""
from __future__ import annotations

from gateway.errors import Refusal
from gateway.pipeline import Pipeline
from gateway.pipeline.call import SCOPE_KEY, Call

MAX_BODY_BYTES = 1 << 20  # UK OB request bodies are a few KB; anything near this is not a legitimate call


async def read_body(receive, limit: int) -> bytes:
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


class ResourceEndpoint:
    """Runs a pipeline for the call and sends what its last stage left in `call.upstream`.

    `template` names the route for the audit when Starlette routed the call (the consent API); proxied routes are
    named by MatchRoute instead.
    """

    def __init__(self, pipeline: Pipeline, max_body_bytes: int = MAX_BODY_BYTES, template: str | None = None) -> None:
        self.pipeline = pipeline
        self.max_body_bytes = max_body_bytes
        self.template = template

    async def __call__(self, scope, receive, send) -> None:
        call: Call = scope[SCOPE_KEY]
        call.path, call.query, call.headers = scope["path"], scope["query_string"], scope["headers"]
        if self.template is not None:
            call.route_template, call.path_params = self.template, dict(scope.get("path_params", {}))
        call.body = await read_body(receive, self.max_body_bytes)
        await self.pipeline.run(call)
        upstream = call.upstream
        headers = [*upstream.headers, (b"content-length", str(len(upstream.body)).encode())]
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        await send({"type": "http.response.body", "body": upstream.body})
