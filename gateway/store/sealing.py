"""Values Redis keeps only in a form that needs a key held outside Redis to read: AES-256-GCM-SIV (RFC 8452).

A Redis dump, backup or replica then yields nothing readable. Each key is derived from a secret kept outside Redis
with HKDF-SHA256 (RFC 5869) and a label naming its one use, so one secret never keys two purposes. The associated
data binds a sealed value to where it belongs (a consent id, say), so it cannot be moved elsewhere and still open.
GCM-SIV, not GCM: a repeated random nonce (2^-96 per pair) would leak nothing but that two values are equal.
"""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


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
