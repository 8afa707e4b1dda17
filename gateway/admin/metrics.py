"""Prometheus metrics, fed from the same AuditRecord the audit log stores (so the two can never disagree).

With several workers, prometheus_client's multiprocess mode is used: `serve` sets PROMETHEUS_MULTIPROC_DIR before
the workers start, each worker writes its own files there and the admin listener adds them up.
"""
from __future__ import annotations

import functools

from prometheus_client import Counter, Histogram

from gateway.audit.record import AuditRecord

REQUESTS = Counter("obgw_requests", "Calls answered, by route template, method, status and decision.",
                   ["route", "method", "status", "decision"])
LATENCY = Histogram("obgw_request_duration_seconds", "Time from arrival to the answer, by route template.",
                    ["route"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
REFUSALS = Counter("obgw_refusals", "Refusals by stable reason id.", ["reason"])


@functools.lru_cache(maxsize=4096)
def _series(route: str, method: str, status: int, decision: str, reason: str | None) -> tuple:
    """The labelled children of one kind of answer, looked up once: `labels()` validates and locks on every call.
    Bounded: routes are templates, and statuses, decisions and reasons are catalogued."""
    return (REQUESTS.labels(route, method, str(status), decision), LATENCY.labels(route),
            REFUSALS.labels(reason) if reason else None)


async def observe(record: AuditRecord) -> None:
    requests, latency, refusals = _series(record.route or "unmatched", record.method, record.status, record.decision,
                                          record.reason)
    requests.inc()
    latency.observe(record.latency_ms / 1000)
    if refusals is not None:
        refusals.inc()
