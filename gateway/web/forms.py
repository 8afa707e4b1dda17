"""What every customer form shares: reading the posted form, and the CSRF checks (OWASP CSRF Prevention).

- Synchroniser token pattern, for forms posted within a session: the token in the form must be the one the
  server-side session holds; with `SameSite=Lax` session cookies as the second line of defence.
- Signed double-submit cookie, for the dashboard's login form, posted before any session exists (so showing it
  writes nothing to Redis): a `__Host-` cookie holds a random value, and the form's token is an HMAC of that value
  under a key only the gateway holds. A `__Host-` cookie cannot be set by another host or over plain HTTP, so a
  third site can neither plant the value nor learn it, and without the key it cannot make the token.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request

from gateway.body import read_body
from gateway.crypto import b64url

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


class SignedDoubleSubmit:
    """The signed double-submit cookie (see the module docstring). Its key is derived (HKDF, RFC 5869, a label of its
    own) from a file key every worker loads, so every worker checks every other's tokens and Redis holds nothing."""

    COOKIE = "__Host-obgw-csrf"
    _VALUE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)

    def __init__(self, file_key: bytes) -> None:
        self._key = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"obgw login form csrf").derive(file_key)

    def value(self, cookie: str | None) -> str:
        """The cookie value to (re)set: the browser's own if it has a well-formed one (several tabs), else a new one."""
        return cookie if cookie and self._VALUE.fullmatch(cookie) else secrets.token_urlsafe(32)

    def token(self, value: str) -> str:
        """The form's csrf_token for this cookie value."""
        mac = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return b64url(mac)

    def matches(self, form: dict[str, list[str]], cookie: str | None) -> bool:
        if cookie is None or self._VALUE.fullmatch(cookie) is None:
            return False
        return csrf_matches(form, self.token(cookie))
