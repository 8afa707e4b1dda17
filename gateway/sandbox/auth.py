"""Customer password checks standing in for the bank's own login.

Only salted scrypt digests are kept. An unknown username is checked against a dummy digest, so the
time taken does not reveal which usernames exist, and digests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

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
