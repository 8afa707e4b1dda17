"""The cryptographic helpers every package shares, in one place: base64url (RFC 7515 §2), thumbprints (RFC 7638 for
JWKs, RFC 8705 `x5t#S256` for certificates), keyed pseudonyms, key derivation and sealing.

Sealing: values Redis keeps only in a form that needs a key held outside Redis to read, AES-256-GCM-SIV (RFC 8452).
A Redis dump, backup or replica then yields nothing readable. Each key is derived from a secret kept outside Redis
with HKDF-SHA256 (RFC 5869) and a label naming its one use, so one secret never keys two purposes. The associated
data binds a sealed value to where it belongs (a consent id, say), so it cannot be moved elsewhere and still open.
GCM-SIV, not GCM: a repeated random nonce (2^-96 per pair) would leak nothing but that two values are equal.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
SEALED = "sealed:"  # what a sealed text value starts with (a value without it was stored in clear)


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED)


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url; ValueError (binascii.Error) if it is not base64."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def x5t_s256(der: bytes) -> str:
    """RFC 8705 §3.1 `x5t#S256`: base64url of SHA-256 over the certificate's DER (what tokens are bound to)."""
    return b64url(hashlib.sha256(der).digest())


_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


def jwk_thumbprint(jwk: dict) -> str:
    """RFC 7638 thumbprint of an EC or RSA JWK: SHA-256 over the required public members, sorted, no whitespace.
    A KeyError for another key type or a missing member."""
    required = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    return b64url(hashlib.sha256(json.dumps(required, sort_keys=True, separators=(",", ":")).encode()).digest())


def pseudonym(key: bytes, customer_id: str) -> str:
    """A customer as a stable name that means nothing without `key`: tokens' `sub` and the audit `subject` (each
    with its own key)."""
    return "cust-" + b64url(hmac.new(key, customer_id.encode(), hashlib.sha256).digest()[:16])


class SealBroken(Exception):
    """A sealed value does not open: another key sealed it, it was changed, or it belongs elsewhere."""


def derive_key(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCMSIV(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise SealBroken("the sealed value does not open with this key") from None
