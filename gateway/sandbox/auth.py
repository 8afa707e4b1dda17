"""The bank's own checks of its customers' two factors (PSD2 RTS Art. 4): something they know, something they have.

- The password: only salted scrypt digests are kept. An unknown username is checked against a dummy digest, so
  the time taken does not reveal which usernames exist, and digests are compared in constant time.
- The one-time code of the customer's authenticator (RFC 6238 TOTP: HMAC-SHA-1, 30 s steps, 6 digits), checked
  against the current step and one either side (§5.2, clock drift); a code once accepted is never accepted again
  for that customer (§5.2, replay), so a code seen over a shoulder or in a log is worthless once used. What has
  been used is kept in memory: a real bank keeps it with the customer's record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# RFC 7914's interactive-login cost: about 40 ms and 16 MiB per check.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32


def _derive(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)


@dataclass(frozen=True)
class Login:
    customer_id: str
    display_name: str
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    @classmethod
    def create(cls, customer_id: str, display_name: str, password: str) -> Login:
        salt = os.urandom(16)
        return cls(customer_id, display_name, salt, _derive(password, salt))


class Credentials:
    """Usernames mapped to customers, checked by password; fixed once built."""

    def __init__(self, users: Iterable[tuple[str, str, str, str]]) -> None:
        """`users`: (username, password, customer id, display name) tuples."""
        self._logins = {
            username: Login.create(customer_id, display_name, password)
            for username, password, customer_id, display_name in users
        }
        self._dummy = Login.create("", "", secrets.token_urlsafe(16))

    def authenticate(self, username: str, password: str) -> Login | None:
        """The customer's login if the password is right, else None; always costs one hash."""
        login = self._logins.get(username)
        candidate = login or self._dummy
        matches = hmac.compare_digest(_derive(password, candidate.salt), candidate.digest)
        return login if matches and login is not None else None


STEP_SECONDS = 30
DIGITS = 6
OTP_PATH = "/internal/otp"


def totp(secret: bytes, step: int) -> str:
    """The code for time step `step` (RFC 6238 §4 over RFC 4226 §5.3's dynamic truncation)."""
    mac = hmac.new(secret, step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF
    return f"{number % 10 ** DIGITS:0{DIGITS}d}"


class OneTimeCodes:
    """Each customer's authenticator secret and the steps whose codes they have used (see the module docstring)."""

    def __init__(self, secrets_by_customer: Mapping[str, str], window: int = 1,
                 now: Callable[[], float] = time.time) -> None:
        """`secrets_by_customer`: customer id → base32 secret; `window`: steps accepted either side of the current
        one (1, as RFC 6238 §5.2 recommends; the test suite's bank accepts more, see `python -m gateway.sandbox`)."""
        self._secrets = {customer: base64.b32decode(secret) for customer, secret in secrets_by_customer.items()}
        self._window, self._now = window, now
        self._used: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def check(self, customer_id: str, code: str) -> bool:
        """Whether `code` is one of the customer's codes, in the window and never accepted before; if so it is now
        used. Every candidate step is compared in constant time."""
        secret = self._secrets.get(customer_id)
        if secret is None or len(code) != DIGITS or not code.isascii() or not code.isdigit():
            return False
        current = int(self._now()) // STEP_SECONDS
        with self._lock:
            used = self._used.setdefault(customer_id, set())
            used -= {step for step in used if step < current - self._window}  # out of the window: refused anyway
            for step in range(current - self._window, current + self._window + 1):
                if hmac.compare_digest(totp(secret, step), code) and step not in used:
                    used.add(step)
                    return True
        return False


def routes(codes: OneTimeCodes) -> list[Route]:
    """`POST /internal/otp` {"customer_id", "otp"}: 200 if the code is right (and now used), 401 if not."""

    async def check_code(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        if not (isinstance(body, dict) and all(isinstance(body.get(k), str) for k in ("customer_id", "otp"))):
            return _json({"error": "invalid_request"}, 400)
        if not codes.check(body["customer_id"], body["otp"]):
            return _json({"error": "invalid_otp"}, 401)
        return _json({"customer_id": body["customer_id"]}, 200)

    return [Route(OTP_PATH, check_code, methods=["POST"])]


def _json(body: dict, status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
