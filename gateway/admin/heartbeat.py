"""Each worker's sign of life for /readyz, and its Redis round trip for /metrics.

A worker whose event loop runs touches `VAR_DIR/workers/<pid>` every `BEAT_SECONDS` (one utime, no Redis); the admin
listener counts the files touched lately. A stuck loop, a dead or not yet started worker stops touching its file. Every
`PING_EVERY` beats the worker also PINGs Redis and observes the round trip (obgw_redis_ping_seconds).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from gateway.admin.metrics import REDIS_ERRORS, REDIS_LATENCY

BEAT_SECONDS = 1.0
FRESH_SECONDS = 5.0      # a file touched longer ago than this is a worker that does not serve
PING_EVERY = 5
log = logging.getLogger("obgw")


def beats_dir(var_dir: Path) -> Path:
    return var_dir / "workers"


async def beat(directory: Path, redis, pid: int | None = None) -> None:
    """Run for the worker's life (app.py lifespan)."""
    pid = pid or os.getpid()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / str(pid)
    path.touch()
    count = 0
    try:
        while True:
            os.utime(path)
            if count % PING_EVERY == 0:
                started = time.perf_counter()
                try:
                    await asyncio.wait_for(redis.ping(), timeout=2.0)
                    REDIS_LATENCY.observe(time.perf_counter() - started)
                except Exception:  # any failure is a failed ping; the request path fails closed by itself
                    REDIS_ERRORS.inc()
            count += 1
            await asyncio.sleep(BEAT_SECONDS)
    finally:
        path.unlink(missing_ok=True)


def serving_workers(directory: Path, now: float | None = None) -> int:
    """How many workers touched their file within FRESH_SECONDS; files of long-gone workers are removed."""
    now = time.time() if now is None else now
    fresh = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            age = now - entry.stat().st_mtime
        except FileNotFoundError:
            continue
        if age <= FRESH_SECONDS:
            fresh += 1
        elif age > 60:
            Path(entry.path).unlink(missing_ok=True)
    return fresh
