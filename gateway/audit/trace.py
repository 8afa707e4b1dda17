"""Data-flow tracing (`obgw audit trace FILE`): which TPPs and consents received the records found in a file.

A file found in a leak may hold UK OB answers, bare records, lists of either, or JSON Lines of them. Each record is
named as the gateway named it on the way out (audit/fingerprints.py): in an answer, by where it sits (Data.Transaction
holds Transactions); bare, by the identity fields it has. The audit log (archive and live, as `audit search` reads
it) is then read once, and every record whose `delivered` holds one of the fingerprints is a delivery.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from gateway.audit import query
from gateway.audit.fingerprints import fingerprint, identity_of, kinds_of, records_at
from gateway.policy.model import RecordIdentity


class TraceInputError(Exception):
    """The file cannot be read as JSON records; the message names the file, line and column."""


@dataclass
class Found:
    """One record of the file: its kind(s), identity and fingerprints, and the deliveries the log holds of it."""
    kinds: tuple[str, ...]
    identity: dict[str, str]
    fingerprints: tuple[str, ...]
    deliveries: list[dict[str, str | None]] = field(default_factory=list)

    @property
    def record_id(self) -> str:
        """The record's own id: the last of its identity fields named `...Id` (a Balance has none of its own: its
        account's), else the last one."""
        named = [value for name, value in self.identity.items() if name.endswith("Id")]
        return named[-1] if named else list(self.identity.values())[-1]

    def as_json(self) -> dict[str, object]:
        return {"record": self.record_id, "kind": "/".join(self.kinds), "identity": self.identity,
                "deliveries": self.deliveries}


def read_documents(path: Path) -> list[object]:
    """The JSON documents in `path`: one JSON value, or one per line (JSON Lines)."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise TraceInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return [orjson.loads(text)]
    except orjson.JSONDecodeError as whole:
        if b"\n" not in text.strip():
            raise TraceInputError(f"{path}:{whole.lineno}:{whole.colno}: not JSON ({whole.msg})") from None
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            documents.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise TraceInputError(f"{path}:{number}:{exc.colno}: neither one JSON value nor JSON Lines "
                                  f"({exc.msg})") from None
    return documents


def records_in(documents: Iterable[object], identities: Iterable[RecordIdentity], key: bytes) -> list[Found]:
    """Every traceable record of the documents, in the order found."""
    known = tuple({(i.path, i.listed, i.fields): i for i in identities}.values())
    found: list[Found] = []
    for document in documents:
        found.extend(_records(document, known, key))
    return found


def _records(value: object, identities: tuple[RecordIdentity, ...], key: bytes) -> Iterator[Found]:
    if isinstance(value, list):
        for item in value:
            yield from _records(item, identities, key)
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("Data"), dict):  # an answer: its records are where each kind sits
        for identity in identities:
            for record in records_at(value, identity):
                if (values := identity_of(record, identity.fields)) is not None:
                    yield Found((identity.kind,), dict(zip(identity.fields, values)),
                                (fingerprint(key, identity.kind, values),))
        return
    kinds = kinds_of(value, identities)
    if kinds:
        named = {name: value[name] for kind in kinds for name in kind.fields}
        yield Found(tuple(sorted({kind.kind for kind in kinds})), named,
                    tuple(fingerprint(key, kind.kind, identity_of(value, kind.fields) or ()) for kind in kinds))


def find_deliveries(log: query.AuditLog, found: list[Found], since: datetime | None = None,
                    until: datetime | None = None) -> None:
    """Fill each record's deliveries (oldest first) from one pass over the audit log."""
    wanted: dict[str, list[Found]] = {}
    for record in found:
        for print_ in record.fingerprints:
            wanted.setdefault(print_, []).append(record)
    for entry in query.search(log, since=since, until=until):
        for print_ in entry.get("delivered") or ():
            for record in wanted.get(print_, ()):
                delivery = {"client_id": entry.get("client_id"), "consent_id": entry.get("consent_id"),
                            "ts": entry.get("ts"), "interaction_id": entry.get("interaction_id")}
                if delivery not in record.deliveries:
                    record.deliveries.append(delivery)
