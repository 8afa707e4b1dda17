"""The gateway's token-signing keys: ES256 (FAPI 1 Advanced §8.6), persisted in Redis, rotated with an overlap.

A key ring is a snapshot of the stored keys. The newest key that is not retired signs; every key not yet pruned
verifies and is published at `jwks_uri`. `rotate` retires the signing key and adds a new one; a retired key stays
for `overlap` seconds (longer than any token it signed lives), so tokens signed just before a rotation still verify
on every worker. Workers learn about a new key when they meet its `kid` (see `pipeline.token`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gateway.pki import jwk_thumbprint

ALGORITHM = "ES256"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey
    created: float
    retired_at: float | None

    @property
    def public_jwk(self) -> dict:
        jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {"kty": jwk["kty"], "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"], "kid": self.kid,
                "use": "sig", "alg": ALGORITHM}


def new_key_record(now: float | None = None) -> tuple[str, dict]:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    kid = jwk_thumbprint(jwk)  # RFC 7638: the kid names the key, so two workers never disagree about it
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return kid, {"kid": kid, "alg": ALGORITHM, "private_pem": pem, "created": now or time.time(), "retired_at": None}


class KeyRing:
    def __init__(self, records: dict[str, dict], overlap: float, now: float | None = None) -> None:
        now = now or time.time()
        self.overlap = overlap
        self.keys: dict[str, SigningKey] = {}
        for kid, record in records.items():
            if record.get("retired_at") is not None and record["retired_at"] + overlap < now:
                continue  # past its overlap: nothing it signed is still valid
            private = serialization.load_pem_private_key(record["private_pem"].encode(), password=None)
            self.keys[kid] = SigningKey(kid, private, record["created"], record.get("retired_at"))
        live = [k for k in self.keys.values() if k.retired_at is None]
        self.signing: SigningKey | None = max(live, key=lambda k: k.created) if live else None

    def verification_key(self, kid: str, now: float | None = None):
        """The public key of `kid`, unless it is unknown or retired longer than the overlap: a rotated-out key
        stops verifying even where this ring was loaded long ago."""
        key = self.keys.get(kid)
        if key is None or (key.retired_at is not None and key.retired_at + self.overlap < (now or time.time())):
            return None
        return key.private.public_key()

    def jwks(self) -> dict:
        return {"keys": [key.public_jwk for key in sorted(self.keys.values(), key=lambda k: -k.created)]}


class SigningKeys:
    """The authorization server's view of the keys (sync, in Authlib's thread); re-read at most every `refresh` s."""

    def __init__(self, store, overlap: float, refresh: float = 5.0) -> None:
        self._store, self.overlap, self._refresh = store, overlap, refresh
        self._ring: KeyRing | None = None
        self._loaded = 0.0

    def ring(self) -> KeyRing:
        if self._ring is None or time.monotonic() - self._loaded > self._refresh:
            self._ring = KeyRing(self._store.signing_keys(), self.overlap)
            self._loaded = time.monotonic()
        if self._ring.signing is None and not self._ring.keys:
            # The very first key, made on first use (two workers racing still make one; see add_signing_key).
            kid, record = new_key_record()
            self._store.add_signing_key(kid, record, only_if_none=True)
            self._ring = KeyRing(self._store.signing_keys(), self.overlap)
        if self._ring.signing is None:
            raise RuntimeError("no signing key: run `obgw keys rotate`")
        return self._ring


def rotate(store, overlap: float, now: float | None = None) -> tuple[str, list[str]]:
    """Retire the signing key(s), add a new one, drop keys past their overlap; returns (new kid, dropped kids)."""
    now = now or time.time()
    records = store.signing_keys()
    updated, dropped = {}, []
    for kid, record in records.items():
        if record.get("retired_at") is None:
            updated[kid] = record | {"retired_at": now}
        elif record["retired_at"] + overlap < now:
            dropped.append(kid)
    kid, record = new_key_record(now)
    updated[kid] = record
    store.update_signing_keys(updated, dropped)
    return kid, dropped
