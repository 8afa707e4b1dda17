"""The audit log's two keys, kept in files outside Redis: who may re-identify a customer, and who signs the heads.

- The pseudonym key (`audit.key`, 32 random bytes as hex): records name a customer only by HMAC-SHA256(key, the
  bank's customer id), so the log can be followed per customer without holding who they are. Turning a customer id
  into that pseudonym (re-identification) needs the key file: Redis never holds it, and the lookup is audited.
- The signing key (`audit-signing.key`, Ed25519, PKCS#8 PEM): each worker signs the chain heads it checkpoints, so
  an exported checkpoint proves, to anyone with the public key, what the log held then. Rewriting Redis and the
  checkpoint file together cannot forge one. A checkpoint commits to every chain's head (`heads`, `at`: see
  `AuditChain.checkpoint`), so a chain deleted whole, or one invented, does not match it.

`gateway/pki.py` (`obgw certs init`) makes development ones.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gateway.crypto import b64url, b64url_decode

SIGNED_FIELDS = ("chain", "seq", "hash", "ts")  # in every checkpoint, the legacy format included
COMMITTED_FIELDS = ("heads", "at")  # every chain's head and the stream position they were read at, where present


class AuditKeyError(Exception):
    """An audit key file is missing or unreadable; the message names it and says what to do."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuditKeyError(f"cannot read the audit {what} {path}: {exc.strerror or exc} "
                            f"(`obgw certs init` writes a development one)") from None


def load_pseudonym_key(path: Path) -> bytes:
    text = _read(path, "pseudonym key").strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) < 32:
        raise AuditKeyError(f"{path}: the audit pseudonym key must be at least 32 bytes written as hex")
    return key




def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, "signing key"), password=None)
    except ValueError as exc:
        raise AuditKeyError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path}: the audit signing key must be Ed25519")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        key = load_signing_key(path).public_key()  # a private key file gives its public half
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path}: not an Ed25519 public key")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _signed_bytes(entry: Mapping[str, object]) -> bytes:
    """The canonical bytes signed: the four fields every checkpoint has, and `heads`/`at` when it has them (adding
    or removing either changes the bytes, so a legacy line cannot be given a made-up map, nor a new line lose it)."""
    signed = {k: entry[k] for k in SIGNED_FIELDS} | {k: entry[k] for k in COMMITTED_FIELDS if k in entry}
    return orjson.dumps(signed, option=orjson.OPT_SORT_KEYS)


def sign_checkpoint(key: Ed25519PrivateKey, entry: Mapping[str, object]) -> dict[str, object]:
    """The checkpoint with `key` (which key) and `sig` (Ed25519 over its canonical chain, seq, hash, ts and, where
    present, heads and at)."""
    signature = b64url(key.sign(_signed_bytes(entry)))
    return {**entry, "key": key_id(key.public_key()), "sig": signature}


def checkpoint_signed_by(public: Ed25519PublicKey, entry: Mapping[str, object]) -> bool:
    try:
        signature = b64url_decode(str(entry["sig"]))
        public.verify(signature, _signed_bytes(entry))
    except (KeyError, ValueError, InvalidSignature):
        return False
    return True


def _entry_bytes(entry: Mapping[str, object]) -> bytes:
    return orjson.dumps({k: v for k, v in entry.items() if k not in ("key", "sig")}, option=orjson.OPT_SORT_KEYS)


def sign_entry(key: Ed25519PrivateKey, entry: Mapping[str, object]) -> dict[str, object]:
    """An archive manifest line (audit/archive.py) with `key` and `sig`: Ed25519 over the canonical JSON of every
    other field, so no field can be added, dropped or changed without the signing key."""
    return {**entry, "key": key_id(key.public_key()), "sig": b64url(key.sign(_entry_bytes(entry)))}


def entry_signed_by(public: Ed25519PublicKey, entry: Mapping[str, object]) -> bool:
    try:
        public.verify(b64url_decode(str(entry["sig"])), _entry_bytes(entry))
    except (KeyError, ValueError, InvalidSignature):
        return False
    return True
