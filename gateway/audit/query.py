"""Reading the audit log for the security team: tail, search, export, and the inputs of `verify`.

Records sit in one Redis stream in arrival order; stream ids start with the arrival time in milliseconds, so a
`--since` filter is a range read, not a scan.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

import orjson

from gateway.store import names


def iter_records(client, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[tuple[str, dict]]:
    """Every record from `start` to `end` (stream ids), oldest first, read in batches."""
    while True:
        rows = client.xrange(names.AUDIT_STREAM, min=start, max=end, count=batch)
        for stream_id, fields in rows:
            yield stream_id.decode(), orjson.loads(fields[b"r"])
        if len(rows) < batch:
            return
        start = "(" + rows[-1][0].decode()


def stream_id_at(moment: datetime) -> str:
    return f"{int(moment.timestamp() * 1000)}-0"


def heads(client) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(names.AUDIT_HEADS).items()}


def _wanted(client_id: str | None, consent_id: str | None, filters: Mapping[str, object] | None) -> dict:
    return {k: v for k, v in {"client_id": client_id, "consent_id": consent_id, **(filters or {})}.items()
            if v is not None}


def search(client, *, client_id: str | None = None, consent_id: str | None = None, since: datetime | None = None,
           until: datetime | None = None, filters: Mapping[str, object] | None = None) -> Iterator[dict]:
    start = stream_id_at(since) if since else "-"
    end = stream_id_at(until) if until else "+"
    wanted = _wanted(client_id, consent_id, filters)
    for _, record in iter_records(client, start, end):
        if all(record.get(k) == v for k, v in wanted.items()):
            yield record


def latest(client, limit: int, *, client_id: str | None = None, consent_id: str | None = None,
           since: datetime | None = None, filters: Mapping[str, object] | None = None, scan: int = 100_000,
           batch: int = 1000) -> list[dict]:
    """The newest `limit` records matching every filter, newest first, looking back over at most `scan` records
    (a page must answer in bounded time however long the log is)."""
    wanted = _wanted(client_id, consent_id, filters)
    start = stream_id_at(since) if since else "-"
    found: list[dict] = []
    end, scanned = "+", 0
    while len(found) < limit and scanned < scan:
        rows = client.xrevrange(names.AUDIT_STREAM, max=end, min=start, count=batch)
        for _, fields in rows:
            record = orjson.loads(fields[b"r"])
            if all(record.get(k) == v for k, v in wanted.items()):
                found.append(record)
                if len(found) == limit:
                    break
        scanned += len(rows)
        if len(rows) < batch:
            break
        end = "(" + rows[-1][0].decode()
    return found


def tail(client, count: int) -> list[dict]:
    rows = client.xrevrange(names.AUDIT_STREAM, count=count)
    return [orjson.loads(fields[b"r"]) for _, fields in reversed(rows)]


def follow(client, after: str = "$", block_ms: int = 1000) -> Iterator[dict]:
    """New records as they arrive (blocking reads); the caller stops iterating to end."""
    last = after
    while True:
        for _, entries in client.xread({names.AUDIT_STREAM: last}, block=block_ms) or ():
            for stream_id, fields in entries:
                last = stream_id.decode()
                yield orjson.loads(fields[b"r"])


def recent_accesses(client, consent_id: str, count: int = 10) -> list[dict]:
    """The consent's latest accesses, newest first (kept by the audit append script)."""
    return [orjson.loads(raw) for raw in client.lrange(names.consent_accesses(consent_id), 0, count - 1)]
