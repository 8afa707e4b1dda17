"""Audit append throughput of one worker's chain at 1, 16 and 64 concurrent requests, against a real redis-server.

Run: .venv/bin/python loadtests/audit_append.py   (starts and stops its own embedded Redis in a temporary dir)
Concurrent requests in one worker share one EVALSHA (group commit), so throughput grows with concurrency.
"""
import asyncio
import tempfile
import time
from pathlib import Path

from gateway.audit.chain import AuditChain
from gateway.audit.record import AuditRecord
from gateway.store.embedded import EmbeddedRedis
from gateway.store.redis import async_client

RECORD = AuditRecord(ts="2026-11-23T10:00:00.000+00:00", interaction_id="6f1c2b1e-5f7a-4b35-9a7e-3d5e2f1a9c11",
                     method="GET", route="/open-banking/v3.1/aisp/accounts", status=200, decision="allow",
                     reason=None, latency_ms=1.234, client_id="tpp-demo", cert_thumbprint="x" * 43)


async def appends_per_second(url: str, concurrency: int, total: int) -> float:
    client = async_client(url)
    chain = AuditChain(client, None)

    async def caller(count: int) -> None:
        for _ in range(count):
            await chain.append(RECORD)

    started = time.perf_counter()
    await asyncio.gather(*(caller(total // concurrency) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.aclose()
    return total / elapsed


if __name__ == "__main__":
    with EmbeddedRedis(Path(tempfile.mkdtemp())) as redis:
        for concurrency in (1, 16, 64):
            rate = asyncio.run(appends_per_second(redis.url, concurrency, 20000))
            print(f"concurrency {concurrency:>3}: {rate:,.0f} appends/s")
