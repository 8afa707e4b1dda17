"""Prometheus metrics, fed from the same AuditRecord the audit log stores (so the two can never disagree).

With several workers, prometheus_client's multiprocess mode is used: `serve` sets PROMETHEUS_MULTIPROC_DIR before
the workers start, each worker writes its own files there and the admin listener adds them up.
"""
from __future__ import annotations

from prometheus_client import Counter, Histogram

from gateway.audit.record import AuditRecord

REQUESTS = Counter("obgw_requests", "Calls answered, by route template, method, status and decision.",
                   ["route", "method", "status", "decision"])
LATENCY = Histogram("obgw_request_duration_seconds", "Time from arrival to the answer, by route template.",
                    ["route"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
REFUSALS = Counter("obgw_refusals", "Refusals by stable reason id.", ["reason"])


async def observe(record: AuditRecord) -> None:
    route = record.route or "unmatched"
    REQUESTS.labels(route, record.method, str(record.status), record.decision).inc()
    LATENCY.labels(route).observe(record.latency_ms / 1000)
    if record.reason:
        REFUSALS.labels(record.reason).inc()
