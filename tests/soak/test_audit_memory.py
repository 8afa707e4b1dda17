"""Redis memory stays flat under steady load with audit retention on (issue 19: "Memory stays flat over a 10-minute
steady run with retention on").

A real gateway (2 workers, embedded Redis) in front of the sandbox bank, with a short live window
(OBGW_AUDIT_LIVE_SECONDS=5, archived every 2 s), takes steady TPP traffic (account reads with a consent's token, at
SOAK_RPS calls a second) for SOAK_SECONDS. Redis's `used_memory` is sampled throughout: once the live window is full,
memory must stop growing (the last third's mean at most SOAK_GROWTH_BYTES above the middle third's), while the same
records kept in Redis would have grown it by far more. Then every call's record is found in archive + live, and
`obgw audit verify` passes over both.

Run: `make test-soak` (SOAK_SECONDS=600 by default there) or `SOAK_SECONDS=60 pytest tests/soak`. Without
SOAK_SECONDS the test is skipped, so `make test` does not spend ten minutes on it.
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import time

import pytest
import redis
from support.gateway import bank_gateway, tpp_client
from support.tpp import access_token_for

from gateway.store import names

pytestmark = pytest.mark.e2e

SECONDS = int(os.environ.get("SOAK_SECONDS", "0") or 0)
RPS = float(os.environ.get("SOAK_RPS", "40"))
GROWTH_BYTES = int(os.environ.get("SOAK_GROWTH_BYTES", str(512 * 1024)))
LIVE_SECONDS, ARCHIVE_SECONDS = 5, 2
ACCOUNTS = "/open-banking/v3.1/aisp/accounts"


@pytest.mark.skipif(SECONDS <= 0, reason="a soak test: set SOAK_SECONDS (`make test-soak` runs 600 s)")
@pytest.mark.timeout(SECONDS + 300)
def test_redis_memory_stays_flat_under_steady_load_with_audit_retention_on(tmp_path, pki, bank):
    gw = bank_gateway(tmp_path, pki, bank, OBGW_AUDIT_LIVE_SECONDS=str(LIVE_SECONDS),
                      OBGW_AUDIT_ARCHIVE_SECONDS=str(ARCHIVE_SECONDS))
    client = redis.Redis.from_url(gw.redis_url)
    try:
        token = access_token_for(gw, pki)
        ids: list[str] = []
        statuses: dict[int, int] = {}
        samples: list[tuple[float, int, int]] = []  # (seconds since start, used_memory, stream length)
        stop = threading.Event()

        def sample() -> None:
            start = time.monotonic()
            while not stop.wait(1.0):
                samples.append((time.monotonic() - start, int(client.info("memory")["used_memory"]),
                                int(client.xlen(names.AUDIT_STREAM))))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        with tpp_client(pki, token=token) as tpp:
            n = 0
            while (elapsed := time.monotonic() - started) < SECONDS:
                pause = n / RPS - elapsed
                if pause > 0:
                    time.sleep(pause)
                answer = tpp.get(gw.base + ACCOUNTS)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                ids.append(answer.headers["x-fapi-interaction-id"])
                n += 1
        stop.set()
        sampler.join(timeout=5)
        rate = len(ids) / SECONDS

        # Memory: skip the first live window (the stream fills up to its steady size), then compare thirds.
        steady = [(t, used, length) for t, used, length in samples if t > LIVE_SECONDS + 2 * ARCHIVE_SECONDS]
        third = len(steady) // 3
        assert third >= 3, f"too few samples: {samples}"
        middle = statistics.mean(used for _, used, _ in steady[third:2 * third])
        last = statistics.mean(used for _, used, _ in steady[2 * third:])
        record_bytes = statistics.mean(len(fields[b"r"]) for _, fields in client.xrange(names.AUDIT_STREAM,
                                                                                        count=100)) \
            if client.xlen(names.AUDIT_STREAM) else 400
        unarchived_growth = rate * (steady[-1][0] - steady[third][0]) * 2 / 3 * record_bytes  # kept forever instead
        longest = max(length for _, _, length in steady)
        growth = last - middle
        report = (f"{len(ids)} calls in {SECONDS} s ({rate:.1f}/s, statuses {statuses}); used_memory mean middle "
                  f"third {middle / 1024:.0f} KiB, last third {last / 1024:.0f} KiB (growth {growth / 1024:.0f} KiB; "
                  f"the records kept in Redis would have added ~{unarchived_growth / 1024:.0f} KiB); "
                  f"stream length at most {longest}")
        print(report)
        assert growth <= GROWTH_BYTES, report
        # The stream holds about two live windows (a short segment waits one more) and an interval, never the whole run.
        assert longest <= rate * (2 * LIVE_SECONDS + 3 * ARCHIVE_SECONDS) + 200, report

        # Every call's record is in archive + live, and the whole log verifies.
        exported = tmp_path / "export.jsonl"
        done = gw.cli("audit", "export", "-o", str(exported))
        assert done.returncode == 0, done.stderr
        found = {json.loads(line)["interaction_id"] for line in exported.read_bytes().splitlines()}
        missing = set(ids) - found
        assert not missing, f"{len(missing)} calls without an audit record, e.g. {sorted(missing)[:3]}"
        done = gw.cli("audit", "verify")
        assert done.returncode == 0, done.stderr
        assert "segments verified against the manifest" in done.stdout
        print(done.stdout)
    finally:
        client.close()
        assert gw.stop() == 0
