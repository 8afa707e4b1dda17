"""Settling what the bank has already done, when Redis cannot take it at once.

Once the bank has answered a payment, the answer is the truth the TPP must get: the consent becoming Consumed (or
its claim released) and the idempotency key keeping the answer are bookkeeping after the fact. If Redis fails at
that moment, the answer still goes out, and the bookkeeping is tried again in the background until Redis takes it
(for up to SETTLE_SECONDS; the claim stays held meanwhile, so no second payment can start under the consent).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.store.redis import RedisError

SETTLE_SECONDS = 300
RETRY_SECONDS = 0.5
log = logging.getLogger("obgw.payments")
_pending: set[asyncio.Task] = set()  # referenced until done, so a task is never collected half-way


async def now_or_later(what: str, attempt: Callable[[], Awaitable[object]]) -> None:
    try:
        await attempt()
    except (RedisError, OSError) as exc:
        log.warning("%s: Redis cannot take it (%s: %s); the bank's answer stands, retrying in the background",
                    what, type(exc).__name__, exc)
        task = asyncio.create_task(_retry(what, attempt))
        _pending.add(task)
        task.add_done_callback(_pending.discard)


async def _retry(what: str, attempt: Callable[[], Awaitable[object]]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        await asyncio.sleep(RETRY_SECONDS)
        try:
            await attempt()
        except (RedisError, OSError):
            if loop.time() >= deadline:
                log.error("%s: still not settled after %d s; its claim stays held", what, SETTLE_SECONDS)
                return
        else:
            log.info("%s: settled", what)
            return
