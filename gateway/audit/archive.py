"""Audit retention: the oldest records move from the Redis stream to signed segment files, and only then are trimmed.

Why. Every call's record used to stay in Redis forever (hundreds of GB a day at full load), yet a bank must keep its
audit records for years. So records older than `OBGW_AUDIT_LIVE_SECONDS` are archived to files under
`OBGW_AUDIT_ARCHIVE_DIR` (default `VAR_DIR/audit/archive/`), and Redis keeps only the recent ones: its memory stays
bounded under steady load, and the log is still one hash chain from its first record to the newest.

On disk, owner-only, per audit shard (store/names.py): shard 0's in the directory itself, each other shard's in the
subdirectory named by its hash tag, each with its own manifest, committed in its own Redis slot and read with the
others by `ArchivedLog`, which `check`s every shard's manifest:

- `segment-NNNNNN.jsonl`: one stream entry a line, as Redis held it: `{"id": "<stream id>", "r": <the record's JSON,
  byte for byte>}`, oldest first. Records keep their chain fields (chain, seq, prev, hash), so each chain continues
  from one segment to the next and into the live stream; stream ids keep the positions signed checkpoints name.
- `manifest.jsonl`: one signed line per step, append-only, each naming the previous line's SHA-256 (`prev`):
  a segment `{"n", "prev", "segment", "first", "last", "records", "bytes", "sha256", "heads", "ts", "key", "sig"}`
  (`heads`: every chain's last "seq:hash" in it) or the deletion of an expired one `{"n", "prev", "deleted", "ts",
  "key", "sig"}`. Signed (Ed25519) with the checkpoint signing key (`key_files.sign_entry`), so only its holder can
  add, change or drop a line unseen.

One step, in this order (`Archiver.run`), so a crash anywhere loses and duplicates nothing:
1. the archiver's lease in Redis (`audit_archive_lease.lua`, as the bank feed's) and an flock on the directory: one
   archiver at a time, whether a gateway worker (every `OBGW_AUDIT_ARCHIVE_SECONDS`) or `obgw audit archive`;
2. the segment written under a temporary name, fsynced, renamed, the directory fsynced;
3. its manifest line appended and fsynced;
4. `audit_archive_commit.lua`: only while the lease is still ours and Redis's committed manifest line is the one this
   line follows, it records the new line (digest, number, last id archived) and `XTRIM MINID`s the records up to the
   segment's last id, in one step.
A crash before 3 leaves a segment file no manifest names (the next step overwrites it); between 3 and 4, a manifest
line Redis has not committed: readers skip live records up to the manifest's last id (no duplicate), and the next
step commits it first (roll forward) and trims; so after a Redis failover that lost the latest commits. A manifest
Redis never committed to (another node's directory, a restore of the wrong one) stops archiving with an error,
rather than trimming what it does not hold.

Reading (`ArchivedLog`): the kept segments in order, then the live stream after the archive's last id, with
AuditReader's reading methods, so `obgw audit search|tail|export` read both. `check_archive` verifies the manifest
(signatures, numbering, links, each segment's SHA-256, Redis's committed line) and gives the chain heads that deleted
segments ended with, from which `chain.verify` checks archive and live as one log.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import heapq
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from redis import Redis

from gateway.audit.chain import GENESIS, Breach, new_chain_id
from gateway.audit.key_files import entry_signed_by, key_id, sign_entry
from gateway.audit.spool import fsync_directory
from gateway.store import names
from gateway.store.audit import MAX_ID_SEQ, ArchiveConflict, ArchiveStore, AuditReader, stream_position

MANIFEST = "manifest.jsonl"
LOCK = ".lock"
SEGMENT_RECORDS = 50_000  # records per segment at most (a step archives several when more are due)
MAX_WAIT_SECONDS = 3600  # a segment short of SEGMENT_RECORDS waits until its oldest record is this much past the
#                          live window (or one live window, if shorter): a few large segments, not one a minute
READ_BATCH = 1000
log = logging.getLogger("obgw.audit")


class _NotDue(Exception):
    """The records due do not fill a segment, and none has waited long enough for a short one."""


class ArchiveError(RuntimeError):
    """The archive cannot be extended safely (its manifest is not the one Redis committed, or it cannot be read)."""


def segment_name(number: int) -> str:
    return f"segment-{number:06d}.jsonl"


def line_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def position(stream_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair; "-" is before every id and "+" after; "(" (exclusive) is read as its id."""
    stream_id = stream_id.lstrip("(")
    if stream_id == "-":
        return (-1, -1)
    if stream_id == "+":
        return (1 << 64, 1 << 64)
    return stream_position(stream_id)


def _after(stream_id: str) -> str:
    """The smallest stream id after `stream_id`: what XTRIM MINID keeps from."""
    ms, n = position(stream_id)
    return f"{ms + 1}-0" if n == MAX_ID_SEQ else f"{ms}-{n + 1}"


# ---------------------------------------------------------------- the manifest

@dataclass
class Manifest:
    """The manifest's complete lines: parsed, and as written (a last line without its newline was never written)."""
    directory: Path
    entries: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    torn: int = 0  # bytes after the last newline

    @property
    def path(self) -> Path:
        return self.directory / MANIFEST

    def digest(self, index: int) -> str:
        """The SHA-256 of line `index` (0-based; negative from the end), "" for a line before the first."""
        if index < 0:
            index += len(self.raw)
        return line_digest(self.raw[index]) if 0 <= index < len(self.raw) else ""

    @property
    def last_digest(self) -> str:
        return self.digest(-1)

    @property
    def deleted(self) -> set[str]:
        return {str(e["deleted"]) for e in self.entries if "deleted" in e}

    @property
    def segments(self) -> list[dict[str, Any]]:
        """Every segment line, deleted ones included, oldest first."""
        return [e for e in self.entries if "segment" in e]

    @property
    def kept(self) -> list[dict[str, Any]]:
        deleted = self.deleted
        return [e for e in self.segments if e["segment"] not in deleted]

    @property
    def last_id(self) -> str:
        """The last stream id archived ("" before the first segment)."""
        segments = self.segments
        return str(segments[-1]["last"]) if segments else ""

    def segment_of(self, stream_id: str) -> str | None:
        at = position(stream_id)
        for entry in self.segments:
            if position(str(entry["first"])) <= at <= position(str(entry["last"])):
                return str(entry["segment"])
        return None


def read_manifest(directory: Path) -> Manifest:
    manifest = Manifest(Path(directory))
    try:
        data = manifest.path.read_bytes()
    except FileNotFoundError:
        return manifest
    lines = data.split(b"\n")
    manifest.torn = len(lines[-1])
    for number, raw in enumerate(lines[:-1], start=1):
        try:
            entry = orjson.loads(raw)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise ArchiveError(f"{manifest.path} line {number} cannot be read: {exc}") from None
        manifest.entries.append(entry)
        manifest.raw.append(raw)
    return manifest


def iter_segment(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(stream id, record) of each line of a segment, in order."""
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                entry = orjson.loads(line)
                yield str(entry["id"]), entry["r"]


# ---------------------------------------------------------------- archiving

@dataclass
class ArchiveReport:
    segments: int = 0      # segments written this run
    records: int = 0       # records archived this run
    trimmed: int = 0       # records trimmed from Redis this run
    deleted: int = 0       # expired segments deleted this run
    recovered: bool = False  # a manifest line a crash left uncommitted was committed (and trimmed) first

    def add(self, other: ArchiveReport) -> ArchiveReport:
        """This report and another shard's, as one."""
        return ArchiveReport(self.segments + other.segments, self.records + other.records,
                             self.trimmed + other.trimmed, self.deleted + other.deleted,
                             self.recovered or other.recovered)

    def __str__(self) -> str:
        text = (f"archived {self.records} records in {self.segments} segments, trimmed {self.trimmed} from Redis, "
                f"deleted {self.deleted} expired segments")
        return text + (" (committed a step a crash had interrupted)" if self.recovered else "")


def shard_directory(directory: Path, shard: str) -> Path:
    """Where an audit shard's archive lives: shard 0's in `directory` itself (as before shards), another's in the
    subdirectory named by its tag. Each has its own signed manifest, committed in its own shard's Redis slot."""
    return Path(directory) if shard == names.AUDIT_TAG else Path(directory) / shard


@dataclass(frozen=True)
class _Shard:
    """One audit shard as the archiver works on it: its Redis keys and its archive directory."""
    store: ArchiveStore
    directory: Path


class Archiver:
    """Moves records older than `live_seconds` (0: every record stored before this millisecond) from each shard's
    stream to its archive under `directory` (`shard_directory`), then trims them.

    `keep_days` > 0 deletes segments whose newest record is older than that (0: archives are kept forever).
    Blocking (Redis and disk): the gateway runs it in a thread (`archive_every`), the CLI directly.
    """

    def __init__(self, redis: Redis, directory: Path, signer: Ed25519PrivateKey, *, live_seconds: int,
                 keep_days: int = 0, holder: str | None = None, lease_seconds: float = 60.0,
                 segment_records: int = SEGMENT_RECORDS, clock=time.time) -> None:
        if live_seconds < 0 or keep_days < 0 or segment_records < 1:
            raise ValueError("live_seconds and keep_days must be >= 0, segment_records >= 1")
        self.directory = Path(directory)
        self.holder = holder or f"archiver-{new_chain_id()}"
        self._redis = redis
        self._signer = signer
        self._live_ms = live_seconds * 1000
        self._wait_ms = min(MAX_WAIT_SECONDS, live_seconds) * 1000
        self._keep_ms = keep_days * 86_400_000
        self._lease_ms = int(lease_seconds * 1000)
        self._segment_records = segment_records
        self._clock = clock
        self.stopping = False  # set to end a run after the segment in progress

    def run(self) -> ArchiveReport | None:
        """One pass over every shard: archive what is due, trim it, delete expired segments. None if another archiver
        is at work on every shard."""
        total: ArchiveReport | None = None
        for tag in AuditReader(self._redis).shards():
            if self.stopping:
                break
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner-only, whichever shard comes first
            shard = _Shard(ArchiveStore(self._redis, tag), shard_directory(self.directory, tag))
            report = self._run_shard(shard)
            if report is not None:
                total = report if total is None else total.add(report)
        return total

    def _run_shard(self, shard: _Shard) -> ArchiveReport | None:
        if not shard.store.take_lease(self.holder, self._lease_ms):
            return None
        try:
            shard.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with _locked(shard.directory / LOCK) as locked:
                if not locked:
                    return None
                return self._run(shard)
        finally:
            with contextlib.suppress(Exception):
                shard.store.release_lease(self.holder)

    def _run(self, shard: _Shard) -> ArchiveReport:
        report = ArchiveReport()
        manifest = self._recover(shard, report)
        now_ms = int(self._clock() * 1000)
        before = f"{now_ms - self._live_ms - 1}-{MAX_ID_SEQ}"  # stream ids older than the live window
        overdue_ms = now_ms - self._live_ms - self._wait_ms  # a short segment is written once its oldest is older
        while not self.stopping and self._archive_segment(shard, manifest, before, overdue_ms, report):
            if not shard.store.take_lease(self.holder, self._lease_ms):
                return report  # lost it: the next holder goes on
        if self._keep_ms:
            for entry in manifest.kept:
                if self.stopping or position(str(entry["last"]))[0] >= now_ms - self._keep_ms:
                    break
                self._delete(shard, manifest, entry, report)
        return report

    def _recover(self, shard: _Shard, report: ArchiveReport) -> Manifest:
        """The manifest, consistent with Redis: a torn last line cut off, a line a crash left uncommitted committed."""
        manifest = read_manifest(shard.directory)
        for leftover in shard.directory.glob(".segment-*.tmp"):  # a segment a crash cut short (we hold the flock)
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        if manifest.torn:
            with open(manifest.path, "r+b") as f:
                f.truncate(sum(len(raw) + 1 for raw in manifest.raw))
                os.fsync(f.fileno())
            manifest.torn = 0
        committed, number, _ = shard.store.committed()
        if committed == manifest.last_digest:
            return manifest
        # Step 3 done, step 4 not (a crash), or Redis lost the latest commits (a failover to a replica that had not
        # got them): every line is fsynced with its segment, so roll forward to the last one.
        behind = [i for i in range(len(manifest.raw)) if manifest.digest(i) == committed] if committed else \
            ([-1] if len(manifest.raw) == 1 else [])
        if behind:
            report.trimmed += shard.store.commit(self.holder, committed, manifest.last_digest, len(manifest.raw),
                                                 manifest.last_id, _after(manifest.last_id) if manifest.last_id
                                                 else "")
            report.recovered = True
            log.warning("audit archive: committed manifest lines %d to %d, which Redis had not (a crash or a "
                        "failover)", behind[0] + 2, len(manifest.raw))
            return manifest
        raise ArchiveError(
            f"the audit archive in {shard.directory} ({len(manifest.raw)} manifest lines) is not the one Redis "
            f"committed to (line {number}, {committed[:16] or 'none'}): another node's or a restored archive "
            f"directory? Nothing is archived or trimmed until they agree (every node must share one archive "
            f"directory, OBGW_AUDIT_ARCHIVE_DIR)")

    def _archive_segment(self, shard: _Shard, manifest: Manifest, before: str, overdue_ms: int,
                         report: ArchiveReport) -> bool:
        """Write the next segment of records up to `before`, commit it and trim them. False when none is due: no
        record is, or too few to fill a segment and the oldest of them is not older than `overdue_ms`."""
        after = manifest.last_id
        rows = shard.store.entries(after, before, min(READ_BATCH, self._segment_records))
        short_ok = bool(rows) and position(rows[0][0])[0] < overdue_ms
        if not rows or (not short_ok and self._due(shard, rows[0][0], before) < self._segment_records):
            return False
        number = len(manifest.raw) + 1
        name = segment_name(number)
        tmp = shard.directory / f".{name}.{secrets.token_hex(4)}.tmp"
        digest, size, count, first, last = hashlib.sha256(), 0, 0, rows[0][0], rows[0][0]
        heads: dict[str, str] = {}
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), "wb") as f:
                while rows:
                    for stream_id, raw in rows:
                        line = b'{"id":"' + stream_id.encode() + b'","r":' + raw + b"}\n"
                        f.write(line)
                        digest.update(line)
                        size += len(line)
                        record = orjson.loads(raw)
                        heads[str(record["chain"])] = f"{record['seq']}:{record['hash']}"
                        last = stream_id
                    count += len(rows)
                    room = self._segment_records - count
                    rows = shard.store.entries(last, before, min(READ_BATCH, room)) if room > 0 else []
                if count < self._segment_records and not short_ok:
                    raise _NotDue
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, shard.directory / name)
            fsync_directory(shard.directory)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, _NotDue):
                return False
            raise
        entry = {"n": number, "prev": manifest.last_digest or GENESIS, "segment": name, "first": first, "last": last,
                 "records": count, "bytes": size, "sha256": digest.hexdigest(), "heads": dict(sorted(heads.items())),
                 "ts": _now()}
        report.trimmed += self._append(shard, manifest, entry, minid=_after(last))
        report.segments += 1
        report.records += count
        return True

    def _due(self, shard: _Shard, first: str, before: str) -> float:
        """About how many records are due, from `first` to `before`: the stream's length times the share of its time
        span they cover (ids are arrival times). Cheap (no record read); a wrong guess only costs one read."""
        length, last = shard.store.extent()
        start, end, cut = position(first)[0], position(last)[0] if last else 0, position(before)[0]
        return length if end <= start else length * min(1.0, (cut - start + 1) / (end - start + 1))

    def _delete(self, shard: _Shard, manifest: Manifest, entry: Mapping[str, Any], report: ArchiveReport) -> None:
        """An expired segment: its deletion is a signed manifest line first, then the file goes."""
        name = str(entry["segment"])
        self._append(shard, manifest, {"n": len(manifest.raw) + 1, "prev": manifest.last_digest or GENESIS,
                                "deleted": name, "ts": _now()}, minid="")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(shard.directory / name)
        fsync_directory(shard.directory)
        report.deleted += 1

    def _append(self, shard: _Shard, manifest: Manifest, entry: dict[str, Any], *, minid: str) -> int:
        """Sign and append a manifest line (fsynced), then commit it in Redis (and trim up to `minid`)."""
        signed = sign_entry(self._signer, entry)
        raw = orjson.dumps(signed)
        expected = manifest.last_digest
        created = not manifest.path.exists()
        fd = os.open(manifest.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, raw + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_directory(shard.directory)
        manifest.entries.append(signed)
        manifest.raw.append(raw)
        return shard.store.commit(self.holder, expected, line_digest(raw), len(manifest.raw), manifest.last_id, minid)


async def archive_every(archiver: Archiver, seconds: float) -> None:
    """The gateway's periodic archiving (each worker runs one; the lease lets one at a time work)."""
    try:
        while True:
            await asyncio.sleep(seconds * (0.5 + secrets.randbelow(1000) / 1000))  # workers spread out
            try:
                report = await asyncio.to_thread(archiver.run)
            except ArchiveConflict as exc:
                log.warning("audit archive: another archiver got in first (%s); retrying later", exc)
            except Exception:
                log.exception("audit archive: the step failed; nothing unarchived was trimmed, retrying later")
            else:
                if report and (report.records or report.deleted or report.recovered):
                    log.info("audit archive: %s", report)
    finally:
        archiver.stopping = True


# ---------------------------------------------------------------- reading and verifying

class ArchivedLog:
    """Every audit shard's archive and live stream (`_ShardLog`), merged by stream id (arrival order) into one log,
    read as AuditReader is."""

    def __init__(self, live: AuditReader, directory: Path) -> None:
        self.live = live
        self.directory = Path(directory)
        self.parts = [_ShardLog(live.shard(tag), shard_directory(self.directory, tag)) for tag in live.shards()]

    @property
    def manifest(self) -> Manifest:
        """Shard 0's manifest (the only one before shards); `manifests` has every shard's."""
        return self.parts[0].manifest

    @property
    def manifests(self) -> list[Manifest]:
        return [part.manifest for part in self.parts]

    def check(self, public: Ed25519PublicKey | None) -> ArchiveCheck:
        """`check_archive` of every shard's manifest against what its Redis slot committed, as one result: the
        segments counted together, the chain heads deleted segments ended with merged (chain ids are unique)."""
        segments = deleted = 0
        base: dict[str, str] = {}
        for part in self.parts:
            found = check_archive(part.manifest, public, part.live.archive_committed())
            segments, deleted = segments + found.segments, deleted + found.deleted
            base.update(found.base)
            if found.breach is not None:
                return ArchiveCheck(segments, deleted, base, found.breach)
        return ArchiveCheck(segments, deleted, base, None)

    def segment_of(self, stream_id: str) -> str | None:
        """The archive segment holding the record at `stream_id` (its path under the archive directory), if any."""
        for part in self.parts:
            segment = part.manifest.segment_of(stream_id)
            if segment is not None:
                return str((part.directory / segment).relative_to(self.directory))
        return None

    def records(self, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        if len(self.parts) == 1:
            return self.parts[0].records(start, end, batch)
        return heapq.merge(*(part.records(start, end, batch) for part in self.parts), key=_arrival)

    def backwards(self, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[dict[str, Any]]:
        rows = self.parts[0].backwards(start, end, batch) if len(self.parts) == 1 else \
            heapq.merge(*(part.backwards(start, end, batch) for part in self.parts), key=_arrival, reverse=True)
        return (record for _, record in rows)

    def tail(self, count: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for record in self.backwards():
            if len(found) >= count:
                break
            found.append(record)
        return list(reversed(found))

    def follow(self, after: str = "$", block_ms: int = 1000) -> Iterator[dict[str, Any]]:
        return self.live.follow(after, block_ms)

    def heads(self) -> dict[str, str]:
        return self.live.heads()

    def recent_accesses(self, consent_id: str, count: int = 10) -> list[dict[str, Any]]:
        return self.live.recent_accesses(consent_id, count)


def _arrival(row: tuple[str, Any]) -> tuple[int, int]:
    return position(row[0])


class _ShardLog:
    """One shard's archive's kept segments and its live stream after them, as one log.

    An archiver may move records from the stream to a new segment while this reads: reading forwards, each live batch
    is taken only if Redis's committed archive did not move past it meanwhile (else those records are read from the
    new segment); reading backwards, the archive is read last, as it is then, below the oldest live record read.
    """

    def __init__(self, live: AuditReader, directory: Path) -> None:
        self.live = live
        self.directory = Path(directory)
        self.manifest = read_manifest(directory)

    def _archived(self, start: str, end: str) -> Iterator[tuple[str, dict[str, Any]]]:
        lo, hi, exclusive = position(start), position(end), start.startswith("(")
        for entry in self.manifest.kept:
            if position(str(entry["last"])) < lo or position(str(entry["first"])) > hi:
                continue
            for stream_id, record in iter_segment(self.directory / str(entry["segment"])):
                at = position(stream_id)
                if (lo < at or (at == lo and not exclusive)) and at <= hi:
                    yield stream_id, record

    def records(self, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        yield from self._archived(start, end)
        archived, begin, hi = self.manifest.last_id, start, position(end)
        while True:
            if archived and position(begin) <= position(archived):
                begin = "(" + archived  # what the archive holds is read from it, never twice
            if position(begin) > hi:
                return
            rows = self.live.entries(begin, end, batch)
            committed = self.live.archive_committed()[2]
            if committed and (not archived or position(committed) > position(archived)):
                self.manifest = read_manifest(self.directory)  # archived (and trimmed?) meanwhile: read them there
                yield from self._archived(begin, committed if position(committed) < hi else end)
                archived = committed
                continue
            yield from rows
            if len(rows) < batch:
                return
            begin = "(" + rows[-1][0]

    def backwards(self, start: str = "-", end: str = "+", batch: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        """(stream id, record) from `end` back to `start`, newest first."""
        archived, lowest, top = self.manifest.last_id, "", end
        begin = "(" + archived if archived and position(start) <= position(archived) else start
        while position(top) >= position(begin):
            rows = self.live.entries(begin, top, batch, reverse=True)
            yield from rows
            if rows:
                lowest = rows[-1][0]
                top = "(" + lowest
            if len(rows) < batch:
                break
        self.manifest = read_manifest(self.directory)
        lo, hi = position(start), position(top if lowest else end)
        exclusive = bool(lowest) or end.startswith("(")
        for entry in reversed(self.manifest.kept):
            if position(str(entry["last"])) < lo or position(str(entry["first"])) > hi:
                continue
            rows = [(sid, rec) for sid, rec in iter_segment(self.directory / str(entry["segment"]))
                    if lo <= position(sid) and (position(sid) < hi or (position(sid) == hi and not exclusive))]
            yield from reversed(rows)


@dataclass(frozen=True)
class ArchiveCheck:
    segments: int                 # segments checked (kept)
    deleted: int                  # segments deleted by retention (their manifest lines checked)
    base: dict[str, str]          # the chain heads the deleted segments ended with: where the kept log starts
    breach: Breach | None


def check_archive(manifest: Manifest, public: Ed25519PublicKey | None, committed: tuple[str, int, str]) -> ArchiveCheck:
    """The manifest's lines (signature, number, link to the line before), each kept segment's SHA-256 and size, and
    that the manifest holds the line Redis committed. The first problem is the breach, naming the line or segment."""
    deleted = manifest.deleted
    base: dict[str, str] = {}
    segments = 0

    def result(breach: Breach | None) -> ArchiveCheck:
        return ArchiveCheck(segments, len(deleted), base, breach)

    where_manifest = f"archive manifest {manifest.path}"
    if manifest.entries and public is None:
        return result(Breach(where_manifest, "no public key to check its signatures with"))
    seen: set[str] = set()
    previous_last = (-1, -1)
    for index, entry in enumerate(manifest.entries):
        where = f"{where_manifest} line {index + 1}"
        assert public is not None
        if not entry_signed_by(public, entry):
            return result(Breach(where, f"is not signed by the audit key {key_id(public)} (forged or altered)"))
        if entry.get("n") != index + 1 or entry.get("prev") != (manifest.digest(index - 1) if index else GENESIS):
            return result(Breach(where, "is out of sequence: lines of the manifest were removed, reordered or "
                                        "inserted"))
        if "deleted" in entry:
            if entry["deleted"] not in seen:
                return result(Breach(where, f"deletes {entry['deleted']}, which no earlier line names"))
            continue
        name = str(entry.get("segment"))
        seen.add(name)
        if position(str(entry["first"])) <= previous_last:
            return result(Breach(f"archive segment {name}", "starts before the previous segment ends"))
        previous_last = position(str(entry["last"]))
        if name in deleted:
            base.update(entry["heads"])
            continue
        segments += 1
        path = manifest.directory / name
        try:
            digest, size = _file_digest(path)
        except FileNotFoundError:
            return result(Breach(f"archive segment {name}", "is missing (deleted without a signed manifest line)"))
        if digest != entry["sha256"] or size != entry["bytes"]:
            return result(Breach(f"archive segment {name}", "was changed: its SHA-256 does not match the signed "
                                                            "manifest"))
    digest, number, last = committed
    if digest and (number < 1 or number > len(manifest.raw) or manifest.digest(number - 1) != digest):
        return result(Breach(where_manifest, f"does not hold the line Redis committed (line {number}, archived up "
                                             f"to {last}): archive lines or segments were removed or replaced"))
    if manifest.raw and not digest and len(manifest.raw) > 1:
        return result(Breach(where_manifest, "Redis has committed none of its lines (another log's archive?)"))
    return result(None)


def _file_digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
