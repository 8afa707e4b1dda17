"""Hash chaining of audit records: canonical form, append (group commit per worker), and verification.

Design (measured in FACTS.md: SHA-256 in Redis Lua costs ~0.24 ms per append and serialises every worker):
each worker process writes its own chain, hashing in Python; the append is one `audit_append.lua` call that adds
the batch to a shared stream and moves the chain's head only if it is still the head the batch was chained to, so
two writers can never fork a chain and no worker waits for another. Concurrent requests in one worker share one
round trip (group commit), and a request's response is released only after its record is durable. Redis is
reached through `store/audit.py` (AuditStore).

With `shards` > 1 (OBGW_AUDIT_SHARDS), the chain writes to the audit shard its id maps to (store/names.py: each shard
its own hash tag, so on a Redis Cluster the chains' appends spread over the masters); one shard (the default) is the
single stream of every version before. Readers and `verify` merge every shard by stream id.

Durable means in Redis or, while Redis cannot be reached, in this worker's spool file (`spool.py`): the batch is
sealed first, so it continues the chain wherever it is written, and a background task (`replay.py`) replays the
spool into Redis in order once Redis answers. Batches after a spooled one are spooled too, so the order (and the
chain) is kept.
A head that moved under us is never spooled: a forked chain fails the append (`AuditChainError`).

Each record carries `chain`, `seq` (1, 2, ...), `prev` (the previous record's hash, GENESIS first) and `hash`
(SHA-256 of the canonical JSON of every other field). The heads live in Redis; each worker also appends its head to
`checkpoints.jsonl` outside Redis every few seconds and at exit, so rewriting Redis alone cannot hide a truncation.
Only a head known to be stored in Redis is checkpointed, so records waiting in a spool never look truncated.
Each checkpoint also commits to the heads of all chains (`heads`, read with the stream's last id `at`), so a chain
deleted whole (records, head and its own checkpoint lines) or one invented and slipped into the stream is caught too.
Records older than the live window leave the stream for signed archive segments (`archive.py`), keeping their
stream ids and chain fields: `verify` reads archive and stream as one log.
"""
from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
import os
import secrets
import socket
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.key_files import sign_checkpoint
from gateway.audit.record import CHAIN_FIELDS, FIELDS, REQUIRED_FIELDS, AuditRecord
from gateway.audit.replay import SpoolReplay
from gateway.audit.spool import Batch, Spool
from gateway.store import names
from gateway.store.audit import UNREACHABLE, AuditStore, StaleHead

GENESIS = "0" * 64
log = logging.getLogger("obgw.audit")


def canonical(fields: Mapping[str, object]) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes that are hashed. Every field but `hash` itself."""
    return orjson.dumps({k: v for k, v in fields.items() if k != "hash"}, option=orjson.OPT_SORT_KEYS)


def digest(fields: Mapping[str, object]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


def seal(record: AuditRecord, chain: str, seq: int, prev: str) -> dict[str, object]:
    fields = record.fields() | {"chain": chain, "seq": seq, "prev": prev}
    fields["hash"] = digest(fields)
    return fields


def is_access(record: AuditRecord) -> bool:
    """A call made under a consent to read or change the customer's data (what the dashboard lists)."""
    return bool(record.consent_id and record.route and record.route.startswith("/open-banking/")
                and "-consents" not in record.route)


def access_entry(record: AuditRecord) -> bytes:
    return orjson.dumps({"ts": record.ts, "method": record.method, "route": record.route, "status": record.status})


def new_chain_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def shard_of(chain_id: str, shards: int) -> str:
    """The audit shard (its hash tag) chain `chain_id` writes to, of `shards`: spread by a hash of the id."""
    if shards < 1:
        raise ValueError(f"the number of audit shards must be at least 1, not {shards}")
    return names.audit_shard_tag(zlib.crc32(chain_id.encode()) % shards, shards)


class AuditChainError(RuntimeError):
    """The chain's head in Redis is not the one this worker wrote: someone else wrote to (or rewrote) its chain."""


class AuditChain:
    """This worker's chain. `append` returns once the record is stored in Redis, or spooled on disk while Redis is away.

    With a `checkpoint_file`, the spool lives in `<its directory>/spool/`, and the first `append` also adopts the spool
    files of workers that died (replay.py replays them, then deletes them). Without one there is no spool: `append`
    raises whenever Redis cannot take the record. Nothing here needs Redis (or the disk) before the first `append`.
    """

    def __init__(self, redis, checkpoint_file: Path | None, chain_id: str | None = None,
                 signer: Ed25519PrivateKey | None = None, spool: bool = True, shards: int = 1) -> None:
        """`signer` signs every checkpoint (audit/key_files.py), so an exported one proves what the log held. Without
        `spool` (an operator's command), Redis must take each record, and dead workers' spools are left alone.
        `shards`: how many audit shards the chains spread over (this one writes to `shard`)."""
        self.chain_id = chain_id or new_chain_id()
        self.shard = shard_of(self.chain_id, shards)
        self._signer = signer
        self._store = AuditStore(redis)
        self._checkpoint_file = checkpoint_file
        # The head the next batch is chained to: stored in Redis or spooled. None: unknown (after a fork, or a failed
        # write that could not be spooled either); the next batch reloads it from Redis.
        self._head: tuple[int, str] | None = (0, GENESIS)
        self._stored: tuple[int, str] = (0, GENESIS)  # the head known to be in Redis: the one a checkpoint anchors
        self._checkpointed: tuple[int, str] = (0, GENESIS)
        self._covered: dict[str, str] = {}  # every chain's head as this chain's last checkpoint committed to them
        self._pending: list[tuple[AuditRecord, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # flusher vs replayer: what is spooled, what is stored, when the file is cut
        self._replay = SpoolReplay(self._store, Spool(checkpoint_file.parent / "spool", self.chain_id), self._lock,
                                   on_replayed=self._replayed, on_set_aside=self._forget_head) \
            if checkpoint_file and spool else None

    @property
    def spool_path(self) -> Path | None:
        """This worker's spool file, once something has been spooled (for operators and tests)."""
        return self._replay.path if self._replay is not None else None

    def start(self) -> None:
        """Adopt the spools of dead workers now, in the background, rather than at the first `append`.

        Optional (the first `append` does it otherwise); needs a running event loop, never waits for Redis.
        """
        if self._replay is not None:
            self._replay.adopt_orphans()

    async def append(self, record: AuditRecord) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        self.start()  # the first append looks for spools that dead workers left, in the background
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self._lock:
                    await self._write([record for record, _ in batch])
            except Exception as exc:  # every waiter learns the batch failed
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def _write(self, records: list[AuditRecord]) -> None:
        """Store one batch in Redis, or spool it: durable either way when this returns. Called under `_lock`."""
        if self._head is None:
            stored = await self._store.head(self.chain_id, self.shard)
            self._head = self._stored = _parse_head(stored) if stored else (0, GENESIS)
        batch, head = self._seal(records)
        queued = self._replay is not None and self._replay.waiting
        if not queued:  # while anything is spooled, later batches queue behind it
            try:
                await self._store.append(batch)
            except StaleHead as exc:
                self._head = None
                raise AuditChainError(str(exc)) from None
            except UNREACHABLE as exc:
                if self._replay is None:
                    self._head = None
                    raise
                log.warning("audit chain %s: Redis cannot take the batch (%s: %s); spooling it",
                            self.chain_id, type(exc).__name__, exc)
            else:
                self._head = self._stored = head
                return
        assert self._replay is not None
        try:
            await self._replay.spool(batch)
        except BaseException:
            if not queued:  # the failed send may have been stored after all (a lost reply): ask Redis next time
                self._head = None
            raise
        self._head = head

    def _seal(self, records: list[AuditRecord]) -> tuple[Batch, tuple[int, str]]:
        assert self._head is not None
        seq, prev = self._head
        expected = _format_head(seq, prev) if seq else ""
        sealed = []
        for record in records:
            seq += 1
            fields = seal(record, self.chain_id, seq, prev)
            prev = str(fields["hash"])
            sealed.append(orjson.dumps(fields))
        accesses = tuple((AuditStore.accesses_key(r.consent_id, self.shard), access_entry(r))
                         for r in records if r.consent_id and is_access(r))
        return Batch(self.chain_id, expected, _format_head(seq, prev), tuple(sealed), accesses, self.shard), (seq, prev)

    def _replayed(self, head: str) -> None:
        """The spooled batches are in Redis up to `head` (under `_lock`): what a checkpoint may now anchor."""
        self._stored = _parse_head(head)

    def _forget_head(self) -> None:
        """The spooled batches will never be in Redis (under `_lock`): the next batch starts from Redis's head."""
        self._head = None

    async def checkpoint(self) -> None:
        """Anchor the stored head outside Redis (append-only file, each line one O_APPEND write and fsync).

        Never a spooled head: `verify` would report those records as truncated until the spool is replayed. The line
        also commits to every chain: `heads` maps each chain whose head moved since this chain's previous line (all of
        them in its first) to its "seq:hash", as Redis held them at stream position `at` (`audit_heads.lua`). So
        every record up to a signed line's `at` is named by that line or an earlier one, and every chain it names
        must be there. While Redis cannot be read, the line names this chain's own head only, as lines always did.
        """
        head = self._stored
        if self._checkpoint_file is None or head[0] == 0:
            return
        entry: dict[str, object] = {"chain": self.chain_id, "seq": head[0], "hash": head[1]}
        heads: dict[str, str] | None
        try:
            await self._store.list_shard(self.shard)
            heads, at = await self._store.heads_at()
        except UNREACHABLE as exc:
            log.warning("audit chain %s: the chain heads cannot be read (%s: %s); checkpointing its own head only",
                        self.chain_id, type(exc).__name__, exc)
            heads = None
            if head == self._checkpointed:
                return
        else:
            moved = {chain: value for chain, value in sorted((heads or {}).items())
                     if self._covered.get(chain) != value}
            if not moved and head == self._checkpointed:
                return
            entry |= {"heads": moved, "at": at}
        entry["ts"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = orjson.dumps(sign_checkpoint(self._signer, entry) if self._signer else entry) + b"\n"
        self._checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._checkpoint_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._checkpointed = head
        if heads is not None:
            self._covered = heads

    async def close(self) -> None:
        """Finish the batch in flight, try the spool one last time, release the spool (kept if Redis is still away)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._replay is not None:
            await self._replay.close()
        await self.checkpoint()


def _format_head(seq: int, digest_hex: str) -> str:
    return f"{seq}:{digest_hex}"


def _parse_head(text: str) -> tuple[int, str]:
    seq, _, digest_hex = text.partition(":")
    return int(seq), digest_hex


# ---------------------------------------------------------------- verification

@dataclass(frozen=True)
class Breach:
    """The first thing wrong with the log: where, and what."""
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class VerifyResult:
    records: int
    chains: int
    breach: Breach | None


def read_checkpoints(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def verify(records: Iterable[tuple[str, Mapping[str, object]]], heads: Mapping[str, str] | None = None,
           checkpoints: Iterable[Mapping[str, Any]] = (), *, partial: bool = False,
           base: Mapping[str, str] | None = None) -> VerifyResult:
    """Check every record's hash, each chain's sequence and links, that every anchor is present, and that every
    record a signed checkpoint was taken after is one it commits to.

    `records` are (position, record) in stored order; a position is the record's stream id in the live log. The
    anchors are the chain heads Redis held when reading began (`heads`, chain → "seq:hash"; None for an exported
    file) and the checkpoints written outside Redis: each names records (its own chain's head, and each head of its
    `heads`) that must be there with that hash. Checkpoints with a `sig` must have been checked by the caller.
    `partial` (an export from `--since`) lets a chain start after seq 1. Detects a changed record (hash), a removed
    one (seq gap, or a link that skips), a reordered or duplicated one (seq going back), a truncated or deleted chain
    (an anchor names a record that is not there), and an invented chain or record (stored before a signed checkpoint
    was taken, yet named by none).
    `base` (chain → "seq:hash") is where each chain's records start when its older ones were archived and then
    deleted by retention (`archive.check_archive`, from the signed manifest): the first record present must follow
    it, and anchors at or before it are not looked for.
    """
    anchors: dict[tuple[str, int], tuple[str, str]] = {}
    for chain, head in (heads or {}).items():
        seq, digest_hex = _parse_head(head)
        anchors[(chain, seq)] = (digest_hex, "its head in Redis")
    coverage = _Coverage()
    for cp in checkpoints:
        source = f"the checkpoint of {cp.get('ts')}"
        named = {str(cp["chain"]): _format_head(int(cp["seq"]), str(cp["hash"])), **cp.get("heads", {})}
        for chain, head in named.items():
            seq, digest_hex = _parse_head(head)
            anchors[(chain, seq)] = (digest_hex, source)
        if "sig" in cp:
            coverage.add(named, cp.get("at"), str(cp.get("ts")))
    coverage.close()
    last: dict[str, tuple[int, str]] = {chain: _parse_head(head) for chain, head in (base or {}).items()}
    for (chain, seq), (digest_hex, source) in list(anchors.items()):
        if chain in last and seq <= last[chain][0]:  # in a deleted segment: the manifest's signed heads stand in
            del anchors[(chain, seq)]
            if seq == last[chain][0] and digest_hex != last[chain][1]:
                return VerifyResult(0, 0, Breach(f"chain {chain}", f"its head where the deleted archive segments "
                                                 f"end does not match {source}"))
    count = 0
    for where, rec in records:
        count += 1
        breach = _check_record(where, rec, last, partial)
        if breach is None:
            chain, seq = str(rec["chain"]), int(rec["seq"])  # type: ignore[call-overload]
            last[chain] = (seq, str(rec["hash"]))
            anchor = anchors.pop((chain, seq), None)
            if anchor is not None and anchor[0] != rec["hash"]:
                breach = Breach(_describe(where, rec), f"does not match {anchor[1]}")
            else:
                breach = coverage.breach(where, rec)
        if breach:
            return VerifyResult(count, len(last), breach)
    for (chain, seq), (_, source) in sorted(anchors.items()):
        have = last.get(chain, (0, GENESIS))[0]
        problem = (f"truncated: {source} names seq {seq} but the last record present is seq {have}" if have else
                   f"missing: {source} names seq {seq} but no record of the chain is present (deleted)")
        return VerifyResult(count, len(last), Breach(f"chain {chain}", problem))
    return VerifyResult(count, len(last), None)


class _Coverage:
    """What the signed checkpoints commit to: the highest seq of each chain they name, and the stream positions
    (`at`) they were taken at. A checkpoint names every head that moved since its writer's previous one (all heads in
    its first), so each record stored after the first signed checkpoint and up to the last one was named by the
    first checkpoint taken after it; one named by none was put there by someone without the signing key. Records
    before the first signed checkpoint (the legacy format, or an export from `--since`) and after the last one (a
    chain born since) are left to the other checks."""

    def __init__(self) -> None:
        self.named: dict[str, int] = {}
        self.taken: list[tuple[tuple[int, int], str]] = []  # (at, ts), sorted by `close`

    def add(self, named: Mapping[str, str], at: object, ts: str) -> None:
        for chain, head in named.items():
            self.named[chain] = max(self.named.get(chain, 0), _parse_head(head)[0])
        position = _position(str(at)) if at is not None else None
        if position is not None:
            self.taken.append((position, ts))

    def close(self) -> None:
        self.taken.sort()

    def breach(self, where: str, rec: Mapping[str, object]) -> Breach | None:
        position = _position(where)
        if (not self.taken or position is None or not self.taken[0][0] < position <= self.taken[-1][0]
                or int(rec["seq"]) <= self.named.get(str(rec["chain"]), 0)):  # type: ignore[call-overload]
            return None
        at, ts = self.taken[bisect.bisect_left(self.taken, (position,))]
        return Breach(_describe(where, rec), f"is in no signed checkpoint, though the checkpoint of {ts} was taken "
                      f"after it (at {at[0]}-{at[1]}): an invented or injected record")


def _position(stream_id: str) -> tuple[int, int] | None:
    """A stream id ("<ms>-<n>") as a sortable pair; None for another kind of position (a line of an export)."""
    ms, dash, n = stream_id.partition("-")
    return (int(ms), int(n)) if dash and ms.isdigit() and n.isdigit() else None


def _describe(where: str, rec: Mapping[str, object]) -> str:
    return f"record {where} (chain {rec.get('chain')}, seq {rec.get('seq')}, interaction {rec.get('interaction_id')})"


def _check_record(where: str, rec: Mapping[str, object], last: Mapping[str, tuple[int, str]],
                  partial: bool) -> Breach | None:
    missing = [f for f in (*REQUIRED_FIELDS, *CHAIN_FIELDS) if f not in rec]
    extra = sorted(set(rec) - set(FIELDS) - set(CHAIN_FIELDS))
    if missing or extra:
        return Breach(_describe(where, rec), f"fields changed (missing {missing}, unexpected {extra})")
    if digest(rec) != rec["hash"]:
        return Breach(_describe(where, rec), "changed: its content does not match its hash")
    chain, seq = str(rec["chain"]), rec["seq"]
    if not isinstance(seq, int):
        return Breach(_describe(where, rec), "changed: seq is not a number")
    prev_seq, prev_hash = last[chain] if chain in last else ((seq - 1, str(rec["prev"])) if partial else (0, GENESIS))
    if seq != prev_seq + 1:
        return Breach(_describe(where, rec), f"out of sequence: seq {seq} follows seq {prev_seq} "
                      f"(records removed, reordered or duplicated)")
    if rec["prev"] != prev_hash:
        return Breach(_describe(where, rec), "does not link to the previous record of its chain (replaced or removed)")
    return None


def iter_lines(lines: Iterable[bytes]) -> Iterator[tuple[str, dict[str, object]]]:
    """Records of an exported JSONL file, positioned by line number."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield f"line {number}", orjson.loads(line)
