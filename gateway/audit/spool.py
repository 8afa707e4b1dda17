"""The audit spool: a local, durable file for audit batches that cannot reach Redis (fail closed, nothing lost).

Why. The traffic-protection issue: "if Redis cannot be reached, no call is forwarded; the TPP gets 503, and the
refusal is still recorded (spooled locally and appended to the chain when Redis returns, without breaking it)"; and
the product rule: "a crash mid-request loses no audit record". The Audit middleware holds every answer until
`AuditChain.append` returns, so a record must be durable somewhere before that. When Redis cannot take it, that place
is this file on the worker's own disk, written and fsync'ed before `append` returns. `AuditChain` replays it into Redis
with the same `audit_append.lua` once Redis answers again, in order. If the spool cannot be written either, `append`
raises and the caller gets 503 `audit.unavailable`, as before.

On disk. `<var>/audit/spool/<chain id>.jsonl`, mode 0600 in a 0700 directory. Each line is one batch (one group
commit) and holds exactly the arguments of one `audit_append.lua` call:

    {"v": 1, "chain": "<chain id>", "expected": "<seq:hash the batch is chained to; empty for a new chain>",
     "head": "<seq:hash after the batch>", "records": [<sealed record>, ...],
     "accesses": [["<the consent's recent-access list key>", <access entry>], ...], "shard": "<audit shard tag>"}

(`shard` names the chain's audit shard, store/names.py; a line without it, written before shards, is shard 0's.)

The records are sealed (chain, seq, prev, hash) before they are spooled, and each batch continues the chain from the
previous one. So the chain stays one line whether a batch went to Redis at once or through the spool. A batch may be
sent twice: after a lost reply, or when a worker died between replaying and truncating. That is harmless, because the
replayer skips batches up to the head Redis holds, and the script answers 0 for a batch whose new head is stored.
A line counts once its "\\n" is written. If a crash cuts a line short, it was never acknowledged (`append` had not
returned, so no answer left), and readers ignore it. A write that fails is cut off the file before `append` raises.

Ownership. Each worker holds an exclusive flock(2) on its own file while it lives. The file is created under a hidden
temporary name, locked, and only then linked to its real name, so no other process can lock a live worker's file.
A worker that died leaves its file unlocked. Any `AuditChain` whose spool directory holds it, and that can take the
lock, adopts it as an orphan: it replays it (the lines carry their own chain id and heads) and deletes it. After
locking, an adopter checks that the name still leads to the file it locked. So when two workers start together, only
one of them replays an orphan.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from gateway.store import names

FORMAT = 1
SUFFIX = ".jsonl"
SET_ASIDE = ".stale"  # `<name>.jsonl.stale-<utc>`: a spool that can never be replayed, kept for the security team
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
log = logging.getLogger("obgw.audit")


class SpoolError(ValueError):
    """A spool file that cannot be read back: a complete line that is not a batch of this format."""


@dataclass(frozen=True, slots=True)
class Batch:
    """One `audit_append.lua` call: records already sealed into `chain`, moving its head `expected` → `head`."""
    chain: str
    expected: str
    head: str
    records: tuple[bytes, ...]                 # sealed records, each the JSON the stream stores
    accesses: tuple[tuple[str, bytes], ...]    # (recent-access list key, entry JSON)
    shard: str = names.AUDIT_TAG               # the chain's audit shard

    def line(self) -> bytes:
        return orjson.dumps({
            "v": FORMAT, "chain": self.chain, "expected": self.expected, "head": self.head,
            "records": [orjson.Fragment(r) for r in self.records],
            "accesses": [[key, orjson.Fragment(entry)] for key, entry in self.accesses], "shard": self.shard,
        }) + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Batch:
        try:
            doc = orjson.loads(line)
            if doc["v"] != FORMAT:
                raise SpoolError(f"format version {doc['v']!r}, not {FORMAT}")
            return cls(str(doc["chain"]), str(doc["expected"]), str(doc["head"]),
                       tuple(orjson.dumps(r) for r in doc["records"]),
                       tuple((str(key), orjson.dumps(entry)) for key, entry in doc["accesses"]),
                       str(doc.get("shard", names.AUDIT_TAG)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SpoolError(f"not a spooled batch: {exc}") from None


def read_batches(fd: int) -> list[Batch]:
    """Every complete line of an open spool file, in order; a last line without its newline is ignored (torn)."""
    data = b""
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        data += chunk
    lines = data.split(b"\n")[:-1]  # whatever follows the last newline was never acknowledged
    batches = [Batch.parse(line) for line in lines if line.strip()]
    if len({b.chain for b in batches}) > 1:
        raise SpoolError(f"batches of several chains in one spool: {sorted({b.chain for b in batches})}")
    return batches


def file_name(chain_id: str) -> str:
    """The chain id itself when it is a plain file name, else a digest of it (the lines carry the real id)."""
    if _SAFE_NAME.fullmatch(chain_id) and not chain_id.endswith(".tmp"):
        return chain_id + SUFFIX
    return "chain-" + hashlib.sha256(chain_id.encode()).hexdigest()[:32] + SUFFIX


class Spool:
    """This worker's spool file for one chain. Blocking file I/O: AuditChain calls it from a thread.

    The file is created and locked on the first `append`, so building an AuditChain touches no disk (and no Redis).
    """

    def __init__(self, directory: Path, chain_id: str) -> None:
        self.directory = Path(directory)
        self.chain_id = chain_id
        self.path: Path | None = None
        self._fd: int | None = None

    def append(self, batch: Batch) -> None:
        """Write one line and fsync it. On any failure the file is cut back to its old end and the error raised."""
        fd = self._open()
        end = os.fstat(fd).st_size
        try:
            data = memoryview(batch.line())
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            raise

    def clear(self) -> None:
        """Every batch is stored in Redis: empty the file (keeping it, and its lock)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)

    def set_aside(self) -> Path | None:
        """Move the file out of the way (it can never be replayed) and start afresh on the next append."""
        if self._fd is None or self.path is None:
            return None
        target = _set_aside(self.path)
        os.close(self._fd)
        self._fd, self.path = None, None
        return target

    def close(self) -> None:
        """Release the lock. An empty file is deleted first; a non-empty one stays for the next worker to adopt."""
        if self._fd is None:
            return
        try:
            if self.path is not None and os.fstat(self._fd).st_size == 0:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        finally:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = file_name(self.chain_id)
        tmp = self.directory / f".{name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file nobody else has opened: never contended
            path = self.directory / name
            try:
                os.link(tmp, path)  # appears under its real name already locked; never replaces a file
            except FileExistsError:  # another instance of the same chain id: keep both, each under its own name
                path = self.directory / f"{name[:-len(SUFFIX)]}.{secrets.token_hex(4)}{SUFFIX}"
                os.link(tmp, path)
            os.unlink(tmp)
            fsync_directory(self.directory)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fd, self.path = fd, path
        return fd


@dataclass
class Orphan:
    """A spool file left by a worker that died, locked by us until it is replayed, set aside or released."""
    path: Path
    fd: int
    batches: list[Batch]

    def remove(self) -> None:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        finally:
            os.close(self.fd)

    def set_aside(self) -> Path:
        try:
            return _set_aside(self.path)
        finally:
            os.close(self.fd)

    def release(self) -> None:
        os.close(self.fd)


def claim_orphans(directory: Path) -> list[Orphan]:
    """Lock and read every spool file in `directory` that no living process holds. Empty ones are deleted.

    A file someone holds is skipped: a live worker's own spool, or an orphan that another adopter has claimed. So is a
    file whose name no longer leads to the inode we locked: another adopter replayed and deleted it in between.
    """
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):  # nothing was ever spooled here (or it cannot be: see append)
        return []
    orphans = []
    for name in names:
        if not (name.endswith(SUFFIX) or (name.startswith(".") and name.endswith(".tmp"))):
            continue
        path = Path(directory) / name
        fd = _lock_if_unheld(path)
        if fd is None:
            continue
        try:
            batches = [] if name.endswith(".tmp") else read_batches(fd)
        except (SpoolError, OSError) as exc:
            target = _set_aside(path)
            os.close(fd)
            log.error("audit spool %s cannot be read (%s); moved to %s", path, exc, target)
            continue
        if batches:
            orphans.append(Orphan(path, fd, batches))
        else:  # a worker that died with nothing spooled, or before it linked its file
            Orphan(path, fd, []).remove()
    return orphans


def _lock_if_unheld(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, IsADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        mine, named = os.fstat(fd), os.stat(path)
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    if (mine.st_dev, mine.st_ino) != (named.st_dev, named.st_ino) or mine.st_nlink == 0:
        os.close(fd)
        return None
    return fd


def _set_aside(path: Path) -> Path:
    target = path.with_name(f"{path.name}{SET_ASIDE}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
                            f"-{secrets.token_hex(2)}")
    os.rename(path, target)
    fsync_directory(path.parent)
    return target


def fsync_directory(directory: Path) -> None:
    """Make a new, renamed or removed name durable (a file's fsync alone does not cover its directory entry)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
