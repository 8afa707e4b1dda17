"""The admin listener's probes and metrics (admin/server.py, heartbeat.py, metrics.py), on a real Redis."""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from gateway.admin import heartbeat, metrics
from gateway.admin.server import AdminApp
from gateway.audit.record import AuditRecord
from gateway.store.redis import async_client

CLOSED = "redis://127.0.0.1:1/0"  # nothing listens there


def _get(app: AdminApp, path: str) -> tuple[str, bytes]:
    answer: list = []
    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda status, headers: answer.append(status)))
    return answer[0], body


def _beat(directory: Path, pids: range, age: float = 0.0) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for pid in pids:
        path = directory / str(pid)
        path.touch()
        os.utime(path, (time.time() - age, time.time() - age))


def test_livez_answers_while_the_process_serves_even_without_redis():
    status, body = _get(AdminApp(CLOSED, {}), "/livez")
    assert status == "200 OK" and json.loads(body)["status"] == "live"


def test_readyz_needs_every_worker_beating_and_redis(redis_url, tmp_path):
    beats = tmp_path / "workers"
    app = AdminApp(redis_url, {"accounts": "http://127.0.0.1:1"}, workers=2, beats=beats)
    assert _get(app, "/readyz")[0].startswith("503")            # no worker has started
    _beat(beats, range(100, 101))
    status, body = _get(app, "/readyz")
    assert status.startswith("503") and json.loads(body)["workers"] == {"serving": 1, "configured": 2}
    _beat(beats, range(101, 102))
    status, body = _get(app, "/readyz")
    # ready although the bank's service is down: that is the breakers' business, not the balancer's
    assert status == "200 OK" and json.loads(body) == {"status": "ready", "redis": "ok",
                                                       "workers": {"serving": 2, "configured": 2}}
    assert _get(app, "/healthz")[0].startswith("503")           # /healthz still asks the back-ends


def test_readyz_is_not_ready_without_redis(tmp_path):
    beats = tmp_path / "workers"
    _beat(beats, range(100, 101))
    status, body = _get(AdminApp(CLOSED, {}, workers=1, beats=beats), "/readyz")
    assert status.startswith("503") and json.loads(body)["redis"] == "unreachable"


def test_a_stale_heartbeat_is_no_worker_and_an_old_one_is_removed(tmp_path):
    beats = tmp_path / "workers"
    _beat(beats, range(1, 2), age=heartbeat.FRESH_SECONDS + 1)
    _beat(beats, range(2, 3), age=120)
    _beat(beats, range(3, 4))
    assert heartbeat.serving_workers(beats) == 1
    assert sorted(p.name for p in beats.iterdir()) == ["1", "3"]


def test_a_worker_beats_while_its_loop_runs_and_pings_redis(redis_url, tmp_path):
    async def go():
        redis = async_client(redis_url)
        before = REGISTRY.get_sample_value("obgw_redis_ping_seconds_count") or 0
        task = asyncio.create_task(heartbeat.beat(tmp_path, redis, pid=4242))
        await asyncio.sleep(0.1)
        beating = heartbeat.serving_workers(tmp_path)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await redis.aclose()
        return beating, before
    beating, before = asyncio.run(go())
    assert beating == 1 and not (tmp_path / "4242").exists()    # gone with the worker
    assert (REGISTRY.get_sample_value("obgw_redis_ping_seconds_count") or 0) == before + 1


def test_metrics_carry_build_info_and_the_workers():
    status, body = _get(AdminApp(CLOSED, {}, workers=2, beats=Path("/nonexistent")), "/metrics")
    text = body.decode()
    assert status == "200 OK" and 'obgw_build_info{python="' in text and 'version="' in text
    assert "obgw_workers_serving 0.0" in text and "obgw_workers_configured 2.0" in text


def _record(client_id: str | None, decision: str = "allow") -> AuditRecord:
    return AuditRecord(ts="", interaction_id="i", method="GET", route="/x", status=200, decision=decision,
                       reason=None, latency_ms=1.0, client_id=client_id)


def test_tpp_counters_name_the_first_tpps_and_count_the_rest_as_other():
    series = metrics._TppSeries(2)
    children = [series.child(client, "allow") for client in ("a", "b", "c", "d", None, "a")]
    labels = [child._labelvalues for child in children]  # type: ignore[attr-defined]
    assert labels == [("a", "allow"), ("b", "allow"), ("other", "allow"), ("other", "allow"), ("none", "allow"),
                      ("a", "allow")]
    assert children[2] is children[3] and children[0] is children[5]
    assert len(series._children) == 4


def test_observe_counts_the_call_per_tpp():
    before = REGISTRY.get_sample_value("obgw_tpp_requests_total", {"client_id": "tpp-probe", "decision": "refuse"})
    asyncio.run(metrics.observe(_record("tpp-probe", "refuse")))
    after = REGISTRY.get_sample_value("obgw_tpp_requests_total", {"client_id": "tpp-probe", "decision": "refuse"})
    assert after == (before or 0) + 1


def test_the_audit_append_is_timed_failures_too():
    async def fails(record):
        raise ConnectionError("down")

    async def stores(record):
        return "stored"
    before = REGISTRY.get_sample_value("obgw_audit_append_seconds_count") or 0
    assert asyncio.run(metrics.timed_append(stores)(_record("x"))) == "stored"
    with pytest.raises(ConnectionError):
        asyncio.run(metrics.timed_append(fails)(_record("x")))
    assert REGISTRY.get_sample_value("obgw_audit_append_seconds_count") == before + 2


def test_the_breaker_gauge_is_written_on_a_change_only():
    service = metrics.ServiceMetrics("gauge-test")
    service.breaker_is("open")
    assert REGISTRY.get_sample_value("obgw_breaker_state", {"service": "gauge-test"}) == 2
    service.breaker_is("half_open")
    assert REGISTRY.get_sample_value("obgw_breaker_state", {"service": "gauge-test"}) == 1
