"""Replaying spooled audit batches into Redis: this worker's own spool, and the spools of workers that died.

While Redis cannot take a batch, `AuditChain` spools it (`spool.py`) and hands it here; a background task sends the
spooled batches in order, with the same `audit_append.lua` call, every REPLAY_SECONDS until Redis answers. Batches
spooled meanwhile queue behind them, so the chain stays one line. The first time, the task also adopts the spool
files of dead workers (`claim_orphans`) and replays them under their own chain ids.

A batch may be in Redis already (its reply was lost, or a worker died between replaying and cutting its spool):
batches up to the head Redis holds are skipped, and the script answers a batch whose new head is stored as done.
A spool whose chain's head in Redis is not the one it continues (`StaleHead`) can never be appended: it is set
aside for the security team, never dropped.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from gateway.audit.spool import Batch, Orphan, Spool, claim_orphans
from gateway.store.audit import UNREACHABLE, AuditStore, StaleHead

REPLAY_SECONDS = 0.5  # how often a spool is retried while Redis is away
log = logging.getLogger("obgw.audit")


class SpoolReplay:
    """One chain's spool and the orphans it adopts, replayed in the background.

    `lock` is the chain's: it guards what is spooled against the chain's own appends. Under it, `on_replayed(head)`
    tells the chain its spooled batches are stored up to `head`, and `on_set_aside()` that they never will be (the
    chain then reloads its head from Redis).
    """

    def __init__(self, store: AuditStore, spool: Spool, lock: asyncio.Lock, *,
                 on_replayed: Callable[[str], None], on_set_aside: Callable[[], None]) -> None:
        self._store = store
        self._spool = spool
        self._lock = lock
        self._on_replayed = on_replayed
        self._on_set_aside = on_set_aside
        self._spooled: list[Batch] = []  # this chain's batches in the spool file and not yet known to be in Redis
        self._orphans: list[Orphan] = []  # other chains' spool files we hold the lock of, until replayed
        self._adopted = False
        self._replaying = False
        self._replayer: asyncio.Task[None] | None = None
        self._failing = False
        self._closing = asyncio.Event()

    @property
    def path(self) -> Path | None:
        """The spool file, once something has been spooled."""
        return self._spool.path

    @property
    def waiting(self) -> bool:
        """Batches of this chain wait in the spool: a new batch must queue behind them. Read under the lock."""
        return bool(self._spooled)

    async def spool(self, batch: Batch) -> None:
        """Write `batch` (sealed) to the spool file, durably, and replay it once Redis answers. Under the lock."""
        await asyncio.to_thread(self._spool.append, batch)
        self._spooled.append(batch)
        self._start()

    def adopt_orphans(self) -> None:
        """Look for the spools of dead workers, in the background; the first call only."""
        if not self._adopted:
            self._adopted = True
            self._start()

    async def close(self) -> None:
        """Stop the task, try everything once more, release the orphans and the spool (kept if Redis is away)."""
        self._closing.set()
        if self._replayer is not None:
            await asyncio.gather(self._replayer, return_exceptions=True)
        if self._spooled or self._orphans:
            try:
                await self._pass(adopt=False)
            except Exception:
                log.exception("audit chain %s: the last replay failed", self._spool.chain_id)
        for orphan in self._orphans:
            orphan.release()
        self._orphans = []
        if self._spooled:
            log.warning("audit chain %s: %d batches stay spooled in %s until a worker adopts it",
                        self._spool.chain_id, len(self._spooled), self._spool.path)
        await asyncio.to_thread(self._spool.close)

    def _start(self) -> None:
        if self._replaying or self._closing.is_set():
            return
        self._replaying = True
        self._replayer = asyncio.create_task(self._until_done(), name=f"obgw-audit-replay-{self._spool.chain_id}")

    async def _until_done(self) -> None:
        try:
            while True:
                try:
                    if await self._pass(adopt=True):
                        return  # no await between the pass's verdict (under the lock) and clearing the flag
                except Exception:  # a bug or a broken disk: keep the records, keep trying
                    log.exception("audit chain %s: replaying the spool failed", self._spool.chain_id)
                if self._closing.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), REPLAY_SECONDS)
        finally:
            self._replaying = False

    async def _pass(self, *, adopt: bool) -> bool:
        """One attempt at everything waiting: this chain's spool, then orphans. True when nothing is left."""
        try:
            await self._replay_own()
            if adopt:
                self._orphans.extend(await asyncio.to_thread(claim_orphans, self._spool.directory))
            while self._orphans:
                await self._replay_orphan(self._orphans[0])
                self._orphans.pop(0)
        except UNREACHABLE as exc:
            if not self._failing:
                log.warning("audit chain %s: the spool cannot be replayed yet (%s: %s); retrying every %.1f s",
                            self._spool.chain_id, type(exc).__name__, exc, REPLAY_SECONDS)
            self._failing = True
            return False
        if self._failing:
            log.warning("audit chain %s: Redis answers again; the spool is replayed", self._spool.chain_id)
        self._failing = False
        async with self._lock:
            return not self._spooled and not self._orphans

    async def _replay(self, batches: list[Batch]) -> int:
        """Store one chain's spooled batches in order, skipping those up to the head Redis already holds.
        Returns how many batches were sent."""
        stored_head = await self._store.head(batches[0].chain, batches[0].shard)
        start = next((i + 1 for i in range(len(batches) - 1, -1, -1) if batches[i].head == stored_head), 0)
        for batch in batches[start:]:
            await self._store.append(batch)
        return len(batches) - start

    async def _replay_own(self) -> None:
        """Send this chain's spooled batches without holding the lock (appends keep spooling meanwhile); then, under
        the lock, forget those sent and cut the file once nothing is left in it that Redis lacks."""
        async with self._lock:
            pending = list(self._spooled)
        if not pending:
            return
        try:
            await self._replay(pending)
        except StaleHead as exc:
            await self._set_own_spool_aside(exc)
            return
        async with self._lock:
            if self._spooled[:len(pending)] != pending:  # set aside meanwhile: nothing to forget
                return
            self._on_replayed(pending[-1].head)
            if len(self._spooled) > len(pending):  # spooled meanwhile: the file is cut once those are in too
                del self._spooled[:len(pending)]
                return
            try:
                await asyncio.to_thread(self._spool.clear)
            except OSError as exc:  # keep them listed (re-sent as no-ops) until the file can be cut
                raise OSError(f"could not empty the spool {self._spool.path}: {exc}") from exc
            self._spooled = []

    async def _replay_orphan(self, orphan: Orphan) -> None:
        chain = orphan.batches[0].chain
        try:
            sent = await self._replay(orphan.batches)
        except StaleHead as exc:
            target = await asyncio.to_thread(orphan.set_aside)
            log.error("audit chain %s: the spool %s left by a stopped worker cannot be appended (%s); kept in %s",
                      chain, orphan.path, exc, target)
            return
        await asyncio.to_thread(orphan.remove)
        log.warning("audit chain %s: adopted the spool %s left by a stopped worker; %d of %d batches replayed",
                    chain, orphan.path, sent, len(orphan.batches))

    async def _set_own_spool_aside(self, exc: StaleHead) -> None:
        """This chain's head in Redis is not the one its spool continues: the spool can never be appended."""
        async with self._lock:
            if not self._spooled:
                return
            count = len(self._spooled)
            target = await asyncio.to_thread(self._spool.set_aside)
            self._spooled = []
            self._on_set_aside()
        log.error("%s: its %d spooled batches cannot be appended; kept in %s", exc, count, target)
