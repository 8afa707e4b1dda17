"""Searching the audit log for the security team: records matching filters, oldest first or the newest few.

Records sit in Redis streams in arrival order, one per audit shard, which `store.audit.AuditReader` merges by stream
id; stream ids start with the arrival time in milliseconds, so a `--since` filter is a range read, not a scan.
Records older than the live window are in archive segments that keep their stream ids (`audit.archive.ArchivedLog`
reads every shard's archive and live stream as one log).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol


class AuditLog(Protocol):
    """What searching reads: `store.audit.AuditReader` (the live stream) or `audit.archive.ArchivedLog` (both)."""
    def records(self, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        ...

    def backwards(self, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[dict[str, Any]]: ...


def stream_id_at(moment: datetime) -> str:
    return f"{int(moment.timestamp() * 1000)}-0"


def _wanted(client_id: str | None, consent_id: str | None, filters: Mapping[str, object] | None) -> dict:
    return {k: v for k, v in {"client_id": client_id, "consent_id": consent_id, **(filters or {})}.items()
            if v is not None}


def search(log: AuditLog, *, client_id: str | None = None, consent_id: str | None = None,
           since: datetime | None = None, until: datetime | None = None,
           filters: Mapping[str, object] | None = None) -> Iterator[dict]:
    start = stream_id_at(since) if since else "-"
    end = stream_id_at(until) if until else "+"
    wanted = _wanted(client_id, consent_id, filters)
    for _, record in log.records(start, end):
        if all(record.get(k) == v for k, v in wanted.items()):
            yield record


def latest(log: AuditLog, limit: int, *, client_id: str | None = None, consent_id: str | None = None,
           since: datetime | None = None, filters: Mapping[str, object] | None = None, scan: int = 100_000,
           batch: int = 1000) -> list[dict]:
    """The newest `limit` records matching every filter, newest first, looking back over at most `scan` records
    (a page must answer in bounded time however long the log is)."""
    wanted = _wanted(client_id, consent_id, filters)
    found: list[dict] = []
    if limit <= 0:
        return found
    for scanned, record in enumerate(log.backwards(stream_id_at(since) if since else "-", batch=batch)):
        if scanned == scan:
            break
        if all(record.get(k) == v for k, v in wanted.items()):
            found.append(record)
            if len(found) == limit:
                break
    return found
