"""Keyed fingerprints of delivered records: the audit log can say who received a record without holding the record.

A record is named by its kind and the fields fields.yaml lists as its identity (`trace`), e.g. a Transaction by its
AccountId and TransactionId, never by its content: a leaked record whose amounts or names were altered still matches.
The fingerprint is keyed BLAKE2b (RFC 7693's MAC mode: one C call, a fifth of HMAC-SHA256's cost on the hot path)
under a key derived from the audit pseudonym key (`audit.key`), 96 bits: without the key file nobody can tell from
the log which record a fingerprint names, nor test a guess. A record whose identity
fields are missing or not strings is not fingerprinted (UK OB makes TransactionId optional: such a bank's
transactions cannot be traced).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

from gateway.crypto import b64url, derive_key
from gateway.policy.model import RecordIdentity

_LABEL = b"obgw audit record fingerprints v1"
_SEPARATOR = "\x1f"  # cannot occur inside a UK OB identifier, so ("a", "bc") and ("ab", "c") differ


def fingerprint_key(pseudonym_key: bytes) -> bytes:
    return derive_key(pseudonym_key, _LABEL)


def fingerprint(key: bytes, kind: str, values: Sequence[str]) -> str:
    message = _SEPARATOR.join((kind, *values)).encode()
    return b64url(hashlib.blake2b(message, key=key, digest_size=12).digest())


def identity_of(record: object, fields: tuple[str, ...]) -> tuple[str, ...] | None:
    """The record's identity values, or None when one is missing or not a string."""
    if not isinstance(record, dict):
        return None
    values = []
    for name in fields:
        value = record.get(name)
        if not isinstance(value, str) or not value:
            return None
        values.append(value)
    return tuple(values)


def records_at(document: object, identity: RecordIdentity) -> Iterator[object]:
    """The records an answer holds where `identity` says they are (none if the answer is not of that shape)."""
    found: object = document
    for name in identity.path:
        if not isinstance(found, dict):
            return
        found = found.get(name)
    if identity.listed:
        if isinstance(found, list):
            yield from found
    elif found is not None:
        yield found


def delivered(key: bytes, document: object, identity: RecordIdentity) -> tuple[str, ...]:
    """The fingerprints of the records in an answer as it leaves the gateway."""
    named = (identity_of(record, identity.fields) for record in records_at(document, identity))
    return tuple(fingerprint(key, identity.kind, values) for values in named if values is not None)


def kinds_of(record: object, identities: Iterable[RecordIdentity]) -> list[RecordIdentity]:
    """The kinds a bare record (one found outside its answer) may be: each whose identity fields it has, leaving out
    a kind whose fields are all another's (a Transaction has an AccountId, but is not an Account)."""
    candidates = {(i.kind, i.fields): i for i in identities if identity_of(record, i.fields) is not None}
    return [i for i in candidates.values()
            if not any(set(i.fields) < set(other.fields) for other in candidates.values())]
