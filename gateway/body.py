"""Reading a request body within a limit, and the one media type request bodies may have: what every listener
(the pipelines, the authorization server, the customer pages) reads bodies with. A floor module (see `call.py`)."""
from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Receive

from gateway.errors import Refusal

MAX_BODY_BYTES = 65_536  # the limit where no route policy gives one (the consent API): UK OB bodies are a few KB
CONTENT_LENGTH = b"content-length"
CONTENT_TYPE = b"content-type"
JSON_MEDIA_TYPE = b"application/json"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

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
