"""The gateway's token-signing keys: ES256 (FAPI 1 Advanced §8.6), persisted in Redis, rotated with an overlap,
revocable at once.

A key's record holds its public JWK in clear and its private key sealed with AES-256-GCM (NIST SP 800-38D; the kid
is the associated data, so a sealed key cannot be passed off under another kid) under the key-encryption key: a file
outside Redis (`OBGW_KEY_ENCRYPTION_KEY`, as `audit.key` is), so a Redis dump, replica or backup alone yields no key
that can sign. Verifiers (the resource stage, `jwks_uri`) read only the public JWKs; only the signer (the
authorization server) and `obgw keys` open a sealed key.

A key ring is a snapshot of the stored keys. The newest key that is not retired signs; every key not yet pruned
verifies and is published at `jwks_uri`. `rotate` retires the signing key and adds a new one; a retired key stays
for `overlap` seconds (longer than any token it signed lives), so tokens signed just before a rotation still verify
on every worker. Workers learn about a new key when they meet its `kid` (see `pipeline.token`). `revoke` deletes a
key and marks it revoked for every registered client: the admission scripts refuse its tokens from their next call.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jwt.algorithms import ECAlgorithm

from gateway.crypto import b64url, b64url_decode, derive_key, jwk_thumbprint

ALGORITHM = "ES256"
KEK_BYTES = 32                  # AES-256
NONCE_BYTES = 12                # SP 800-38D §8.2.2: random 96-bit nonces (a handful of keys sealed, far below 2^32)
VERIFIER_RELOAD_SECONDS = 60.0  # a worker re-reads the keys at least this often (pipeline.token.KeyCache)


class KeyEncryptionError(Exception):
    """The key-encryption key is missing, unreadable, or not the one the stored keys were sealed with."""



class KeyEncryptionKey:
    """Seals and opens the signing keys' private halves (the kid as associated data)."""

    def __init__(self, key: bytes, path: Path | None = None) -> None:
        if len(key) != KEK_BYTES:
            raise KeyEncryptionError(f"{path}: the key-encryption key must be {KEK_BYTES} bytes written as hex")
        self._aead, self.path = AESGCM(key), path
        self._key = key

    @classmethod
    def load(cls, path: Path) -> KeyEncryptionKey:
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise KeyEncryptionError(
                f"cannot read the key-encryption key {path}: {exc.strerror or exc} (OBGW_KEY_ENCRYPTION_KEY names it; "
                "`obgw certs init` writes a development one)") from None
        try:
            key = bytes.fromhex(text.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            key = b""
        return cls(key, path)

    def derive(self, label: bytes) -> bytes:
        """A key of its own for `label` (HKDF), the same on every node that holds this file: e.g. the DPoP nonces'."""
        return derive_key(self._key, label)

    def seal_bytes(self, label: str, data: bytes) -> str:
        """`data` sealed with AES-256-GCM, `label` (what it is: a kid, a secret's name) as associated data, so a
        sealed value opens only as what it was sealed as."""
        nonce = os.urandom(NONCE_BYTES)
        return b64url(nonce + self._aead.encrypt(nonce, data, label.encode()))

    def open_bytes(self, label: str, sealed: str, what: str | None = None) -> bytes:
        try:
            raw = b64url_decode(sealed)
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], label.encode())
        except (ValueError, InvalidTag):
            raise KeyEncryptionError(
                f"the key-encryption key {self.path} does not open {what or label}: it is not the key the stored "
                "secrets were sealed with (OBGW_KEY_ENCRYPTION_KEY)") from None

    def seal(self, kid: str, private: ec.EllipticCurvePrivateKey) -> str:
        return self.seal_bytes(kid, private.private_bytes(serialization.Encoding.DER,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))

    def open(self, kid: str, sealed: str) -> ec.EllipticCurvePrivateKey:
        return _ec_private(serialization.load_der_private_key(self.open_bytes(kid, sealed, f"signing key {kid}"),
                                                              password=None))

@dataclass(frozen=True)
class SigningKey:
    kid: str
    jwk: dict                  # the public key's RFC 7638 members: kty, crv, x, y
    public: ec.EllipticCurvePublicKey
    created: float
    retired_at: float | None
    private: ec.EllipticCurvePrivateKey | None = None  # only the signer's ring opens it

    @property
    def public_jwk(self) -> dict:
        return {**self.jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}


def _ec_private(key: object) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("a token-signing key is not an EC private key")
    return key


def _sealed_record(kek: KeyEncryptionKey, private: ec.EllipticCurvePrivateKey, created: float,
                   retired_at: float | None) -> tuple[str, dict]:
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    public = {"kty": jwk["kty"], "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]}
    kid = jwk_thumbprint(public)  # RFC 7638: the kid names the key, so two workers never disagree about it
    return kid, {"kid": kid, "alg": ALGORITHM, "public_jwk": public, "sealed_private_key": kek.seal(kid, private),
                 "created": created, "retired_at": retired_at}


def new_key_record(kek: KeyEncryptionKey, now: float | None = None) -> tuple[str, dict]:
    return _sealed_record(kek, ec.generate_private_key(ec.SECP256R1()), now or time.time(), None)


class KeyRing:
    """The stored keys at one moment; with `kek`, the signing key's private half is opened (the signer's ring)."""

    def __init__(self, records: dict[str, dict], overlap: float, now: float | None = None,
                 kek: KeyEncryptionKey | None = None) -> None:
        now = now or time.time()
        self.overlap = overlap
        self.keys: dict[str, SigningKey] = {}
        for kid, record in records.items():
            if record.get("retired_at") is not None and record["retired_at"] + overlap < now:
                continue  # past its overlap: nothing it signed is still valid
            if "public_jwk" not in record:
                continue  # stored in clear by an older version, until `seal_in_clear` seals it (at start)
            jwk = record["public_jwk"]
            public = ECAlgorithm.from_jwk(jwk)
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise ValueError(f"signing key {kid}: its public_jwk is not an EC public key")
            self.keys[kid] = SigningKey(kid, jwk, public, record["created"],
                                        record.get("retired_at"))
        live = [k for k in self.keys.values() if k.retired_at is None]
        self.signing: SigningKey | None = max(live, key=lambda k: k.created) if live else None
        if kek is not None and self.signing is not None:
            self.signing = dataclasses.replace(
                self.signing, private=kek.open(self.signing.kid, records[self.signing.kid]["sealed_private_key"]))

    def _verifies(self, key: SigningKey, now: float) -> bool:
        return key.retired_at is None or key.retired_at + self.overlap >= now

    def verification_key(self, kid: str, now: float | None = None):
        """The public key of `kid`, unless it is unknown or retired longer than the overlap: a rotated-out key
        stops verifying even where this ring was loaded long ago."""
        key = self.keys.get(kid)
        return key.public if key is not None and self._verifies(key, now or time.time()) else None

    def jwks(self, now: float | None = None) -> dict:
        now = now or time.time()
        return {"keys": [key.public_jwk for key in sorted(self.keys.values(), key=lambda k: -k.created)
                         if self._verifies(key, now)]}


def seal_in_clear(store, kek: KeyEncryptionKey) -> list[str]:
    """Seal, in place, every key an older version stored in clear (`private_pem`); returns their kids. A record
    changed meanwhile (rotated, revoked) is left to that change: the store replaces only the record it was given."""
    sealed = []
    for kid, record in store.signing_keys().items():
        if "private_pem" in record:
            private = _ec_private(serialization.load_pem_private_key(record["private_pem"].encode(), password=None))
            _, replacement = _sealed_record(kek, private, record["created"], record.get("retired_at"))
            if store.replace_signing_key(kid, record, replacement):
                sealed.append(kid)
    return sealed


def open_all(store, kek: KeyEncryptionKey) -> list[str]:
    """Seal what is in clear, then open every stored key: a wrong key-encryption key stops the start (or the
    command) with KeyEncryptionError, not the first token request. Returns the kids sealed now."""
    sealed = seal_in_clear(store, kek)
    for kid, record in store.signing_keys().items():
        if "sealed_private_key" in record:
            kek.open(kid, record["sealed_private_key"])
    return sealed


class SigningKeys:
    """The authorization server's view of the keys (sync, in Authlib's thread). The keys are read from Redis on every
    use (one small HGETALL; the ring is rebuilt only when they changed), so a revoked key neither signs nor verifies
    here from the moment `obgw keys revoke` returns."""

    def __init__(self, store, overlap: float, kek: KeyEncryptionKey) -> None:
        self._store, self.overlap, self._kek = store, overlap, kek
        self._records: dict[str, dict] | None = None
        self._ring: KeyRing | None = None

    def ring(self) -> KeyRing:
        records = self._store.signing_keys()
        if not records:
            # The very first key, made on first use (two workers racing still make one; see add_signing_key).
            kid, record = new_key_record(self._kek)
            self._store.add_signing_key(kid, record, only_if_none=True)
            records = self._store.signing_keys()
        if any("private_pem" in record for record in records.values()) and seal_in_clear(self._store, self._kek):
            records = self._store.signing_keys()
        if self._ring is None or records != self._records:
            self._ring, self._records = KeyRing(records, self.overlap, kek=self._kek), records
        if self._ring.signing is None:
            raise RuntimeError("no signing key: run `obgw keys rotate`")
        return self._ring


def signer(ring_of: Callable[[], KeyRing], typ: str) -> Callable[[dict], str]:
    """`sign(claims)`: a compact JWS with the current signing key (ES256, its kid, `typ`) for what the gateway itself
    asserts to a TPP, e.g. an RFC 8417 event (`typ: secevent+jwt`). Sync: the ring may be re-read from Redis."""
    def sign(claims: dict) -> str:
        key = ring_of().signing
        if key is None or key.private is None:
            raise RuntimeError("no signing key: run `obgw keys rotate`")
        return jwt.encode(claims, key.private, ALGORITHM, headers={"kid": key.kid, "typ": typ})
    return sign


def rotate(store, kek: KeyEncryptionKey, overlap: float, now: float | None = None) -> tuple[str, list[str]]:
    """Retire the signing key(s), add a new one, drop keys past their overlap; returns (new kid, dropped kids)."""
    now = now or time.time()
    records = store.signing_keys()
    updated, dropped = {}, []
    for kid, record in records.items():
        if record.get("retired_at") is None:
            updated[kid] = record | {"retired_at": now}
        elif record["retired_at"] + overlap < now:
            dropped.append(kid)
    kid, record = new_key_record(kek, now)
    updated[kid] = record
    store.update_signing_keys(updated, dropped)
    return kid, dropped


def revocation_seconds(overlap: float) -> int:
    """How long a revoked key's markers must stay: until every token verified with it before has expired (the
    overlap) and every worker has re-read the keys without it (VERIFIER_RELOAD_SECONDS)."""
    return int(overlap + VERIFIER_RELOAD_SECONDS) + 1


def revoke(store, kek: KeyEncryptionKey, kid: str, overlap: float) -> tuple[int, str | None]:
    """End `kid` now: mark it revoked for every registered client (Admit refuses its tokens from their next call on
    every worker), delete it, and, if it was the last key that could sign, add a new one that signs from now.
    Returns (clients marked, the new kid or None); KeyError if there is no such key."""
    records = store.signing_keys()
    if kid not in records:
        raise KeyError(kid)
    still_signing = any(k != kid and r.get("retired_at") is None for k, r in records.items())
    new = None if still_signing else new_key_record(kek)
    marked = store.revoke_signing_key(kid, revocation_seconds(overlap), new)
    return marked, new[0] if new else None
