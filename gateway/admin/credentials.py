"""The admin pages' one credential: a password whose scrypt hash sits in a file (`obgw admin password` writes it).

A separate credential on a separate (loopback) listener: no TPP certificate, token or customer session is accepted
there, and nothing the main listener issues can reach it. No file: the pages answer 503 until one is set.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

_N, _R, _P = 2**14, 8, 1  # scrypt parameters (RFC 7914 §2 interactive-login figures)
USER = "admin"


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_password(path: Path, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(hash_password(password) + "\n")


def password_matches(stored: str, password: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.strip().split("$")
        if scheme != "scrypt":
            return False
        mine = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                              dklen=len(base64.b64decode(digest)))
    except ValueError:
        return False
    return hmac.compare_digest(mine, base64.b64decode(digest))


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an RFC 7617 Basic Authorization header, or None."""
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None
