"""What every customer form shares: reading the posted form, and the synchroniser-token CSRF check.

OWASP CSRF Prevention, synchroniser token pattern: the token in the form must be the one the server-side session
holds; with `SameSite=Lax` session cookies as the second line of defence.
"""
from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from starlette.requests import Request

from gateway.pipeline.endpoint import read_body

MAX_FORM_BYTES = 16 * 1024


async def read_form(request: Request) -> dict[str, list[str]] | None:
    """The posted form, each field with all its values; None if it is not a readable form."""
    body = await read_body(request.receive, MAX_FORM_BYTES)
    form: dict[str, list[str]] = {}
    try:
        for key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
            form.setdefault(key, []).append(value)
    except (UnicodeDecodeError, ValueError):
        return None
    return form


def csrf_matches(form: dict[str, list[str]], expected: str) -> bool:
    token = form.get("csrf_token", [])
    return len(token) == 1 and hmac.compare_digest(token[0].encode(), expected.encode())


def one(form: dict[str, list[str]], name: str) -> str:
    """The single value of a field, or "" when it is absent or given more than once."""
    values = form.get(name, [])
    return values[0] if len(values) == 1 else ""
