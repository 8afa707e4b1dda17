"""Hash chaining of audit records: canonical form, append (group commit per worker), and verification.

Design (measured in FACTS.md: SHA-256 in Redis Lua costs ~0.24 ms per append and serialises every worker):
each worker process writes its own chain, hashing in Python; the append is one `audit_append.lua` call that adds
the batch to a shared stream and moves the chain's head only if it is still the head the batch was chained to, so
two writers can never fork a chain and no worker waits for another. Concurrent requests in one worker share one
round trip (group commit), and a request's response is released only after its record is in Redis.

Each record carries `chain`, `seq` (1, 2, ...), `prev` (the previous record's hash, GENESIS first) and `hash`
(SHA-256 of the canonical JSON of every other field). The heads live in Redis; each worker also appends its head to
`checkpoints.jsonl` outside Redis every few seconds and at exit, so rewriting Redis alone cannot hide a truncation.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from gateway.audit.record import CHAIN_FIELDS, FIELDS, AuditRecord
from gateway.store import keys
from gateway.store.redis import ResponseError, async_script

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


class AuditChainError(RuntimeError):
    """The chain's head in Redis is not the one this worker wrote: someone else wrote to (or rewrote) its chain."""


class AuditChain:
    """This worker's chain. `append` returns once the record is stored in Redis."""

    def __init__(self, redis, checkpoint_file: Path | None, chain_id: str | None = None) -> None:
        self.chain_id = chain_id or new_chain_id()
        self._redis = redis
        self._script = async_script(redis, "audit_append")
        self._checkpoint_file = checkpoint_file
        self._head: tuple[int, str] | None = (0, GENESIS)  # None: unknown after a failed write; reloaded from Redis
        self._checkpointed: tuple[int, str] = (0, GENESIS)
        self._pending: list[tuple[AuditRecord, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, record: AuditRecord) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write([record for record, _ in batch])
            except Exception as exc:  # every waiter learns the batch failed; the next batch starts from Redis's head
                self._head = None
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def _write(self, records: list[AuditRecord]) -> None:
        if self._head is None:
            stored = await self._redis.hget(keys.AUDIT_HEADS, self.chain_id)
            self._head = _parse_head(stored.decode()) if stored else (0, GENESIS)
        seq, prev = self._head
        expected = _format_head(seq, prev) if seq else ""
        sealed = []
        for record in records:
            seq += 1
            fields = seal(record, self.chain_id, seq, prev)
            prev = str(fields["hash"])
            sealed.append(orjson.dumps(fields))
        accesses = [(keys.consent_accesses(r.consent_id), access_entry(r)) for r in records if is_access(r)]
        try:
            await self._script(keys=[keys.AUDIT_STREAM, keys.AUDIT_HEADS, *(key for key, _ in accesses)],
                               args=[self.chain_id, expected, _format_head(seq, prev), len(sealed), *sealed,
                                     *(entry for _, entry in accesses)])
        except ResponseError as exc:
            if str(exc).startswith("STALEHEAD"):
                raise AuditChainError(f"audit chain {self.chain_id}: head moved under us ({exc})") from None
            raise
        self._head = (seq, prev)

    async def checkpoint(self) -> None:
        """Anchor the head outside Redis (append-only file, one line per checkpoint; atomic for lines < PIPE_BUF)."""
        head = self._head
        if self._checkpoint_file is None or head is None or head == self._checkpointed or head[0] == 0:
            return
        line = orjson.dumps({"chain": self.chain_id, "seq": head[0], "hash": head[1],
                             "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + b"\n"
        self._checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._checkpoint_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._checkpointed = head

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
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
           checkpoints: Iterable[Mapping[str, object]] = (), *, partial: bool = False) -> VerifyResult:
    """Check every record's hash, each chain's sequence and links, and that every anchor is present.

    `records` are (position, record) in stored order. The anchors are the chain heads Redis held when reading began
    (`heads`, chain → "seq:hash"; None for an exported file) and the checkpoints written outside Redis: each names a
    record that must be there with that hash. `partial` (an export from `--since`) lets a chain start after seq 1.
    Detects a changed record (hash), a removed one (seq gap, or a link that skips), a reordered or duplicated one
    (seq going back), and a truncated chain (an anchor names a record that is not there).
    """
    anchors: dict[tuple[str, int], tuple[str, str]] = {}
    for chain, head in (heads or {}).items():
        seq, digest_hex = _parse_head(head)
        anchors[(chain, seq)] = (digest_hex, "its head in Redis")
    for cp in checkpoints:
        anchors[(str(cp["chain"]), int(cp["seq"]))] = (str(cp["hash"]), f"the checkpoint of {cp.get('ts')}")
    last: dict[str, tuple[int, str]] = {}
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
        if breach:
            return VerifyResult(count, len(last), breach)
    for (chain, seq), (_, source) in sorted(anchors.items()):
        have = last.get(chain, (0, GENESIS))[0]
        return VerifyResult(count, len(last), Breach(
            f"chain {chain}", f"truncated: {source} names seq {seq} but the last record present is seq {have}"))
    return VerifyResult(count, len(last), None)


def _describe(where: str, rec: Mapping[str, object]) -> str:
    return f"record {where} (chain {rec.get('chain')}, seq {rec.get('seq')}, interaction {rec.get('interaction_id')})"


def _check_record(where: str, rec: Mapping[str, object], last: Mapping[str, tuple[int, str]],
                  partial: bool) -> Breach | None:
    missing = [f for f in (*FIELDS, *CHAIN_FIELDS) if f not in rec]
    extra = sorted(set(rec) - set(FIELDS) - set(CHAIN_FIELDS))
    if missing or extra:
        return Breach(_describe(where, rec), f"fields changed (missing {missing}, unexpected {extra})")
    if digest(rec) != rec["hash"]:
        return Breach(_describe(where, rec), "changed: its content does not match its hash")
    chain, seq = str(rec["chain"]), rec["seq"]
    if not isinstance(seq, int):
        return Breach(_describe(where, rec), "changed: seq is not a number")
    prev_seq, prev_hash = last.get(chain, (None, None)) if chain in last else (
        (seq - 1, rec["prev"]) if partial else (0, GENESIS))
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
