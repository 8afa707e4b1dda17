"""Prometheus metrics: the calls (fed from the same AuditRecord the audit log stores, so the two never disagree), the
bank's services as Forward sees them, Redis and the audit appends as the workers see them.

With several workers, prometheus_client's multiprocess mode is used: `serve` sets PROMETHEUS_MULTIPROC_DIR before
the workers start, each worker writes its own files there and the admin listener adds them up (server.py).

Cardinality is bounded everywhere: routes are templates; statuses, decisions, reasons and outcomes are catalogued;
services are the policy's; TPPs are the first `TPP_SERIES` client ids a worker sees, every later one is `other`.
Every labelled child is looked up once and kept: `labels()` validates and locks on every call.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram

from gateway.audit.record import AuditRecord

REQUESTS = Counter("obgw_requests", "Calls answered, by route template, method, status and decision.",
                   ["route", "method", "status", "decision"])
LATENCY = Histogram("obgw_request_duration_seconds", "Time from arrival to the answer, by route template.",
                    ["route"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
REFUSALS = Counter("obgw_refusals", "Refusals by stable reason id.", ["reason"])
TPP_REQUESTS = Counter("obgw_tpp_requests", "Calls by TPP (client id; `other` past the first TPP_SERIES a worker "
                       "sees, `none` before a client is known) and decision.", ["client_id", "decision"])
UPSTREAM_LATENCY = Histogram("obgw_upstream_duration_seconds", "Time the bank's service took to answer, by service.",
                             ["service"], buckets=(.0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
UPSTREAM_CALLS = Counter("obgw_upstream_calls", "Calls forwarded to the bank, by service and outcome (the status "
                         "class, or timeout, unavailable, unanswered, shed).", ["service", "outcome"])
BREAKER_STATE = Gauge("obgw_breaker_state", "Circuit breaker of each service: 0 closed, 1 half-open, 2 open (the "
                      "worst of the live workers).", ["service"], multiprocess_mode="livemax")
AUDIT_APPEND = Histogram("obgw_audit_append_seconds", "Time to store one call's audit record (Redis, or the spool).",
                         buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
REDIS_LATENCY = Histogram("obgw_redis_ping_seconds", "Round trip of a PING from each worker to Redis, every "
                          "few seconds.", buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
REDIS_ERRORS = Counter("obgw_redis_ping_errors", "PINGs from a worker to Redis that failed or timed out.")

TPP_SERIES = 50
OTHER, NONE = "other", "none"
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
OUTCOMES = ("1xx", "2xx", "3xx", "4xx", "5xx", "timeout", "unavailable", "unanswered", "shed")


@functools.lru_cache(maxsize=4096)
def _series(route: str, method: str, status: int, decision: str, reason: str | None) -> tuple:
    """The labelled children of one kind of answer. Bounded: routes are templates, and statuses, decisions and
    reasons are catalogued."""
    return (REQUESTS.labels(route, method, str(status), decision), LATENCY.labels(route),
            REFUSALS.labels(reason) if reason else None)


class _TppSeries:
    """Each client id's children, the first `limit` client ids seen by this worker; `other` for the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._children: dict[tuple[str, str], Counter] = {}
        self._named: set[str] = set()

    def child(self, client_id: str | None, decision: str) -> Counter:
        if client_id is None:
            label = NONE
        elif client_id in self._named:
            label = client_id
        elif len(self._named) < self.limit:
            self._named.add(client_id)
            label = client_id
        else:
            label = OTHER
        found = self._children.get((label, decision))
        if found is None:
            found = self._children[(label, decision)] = TPP_REQUESTS.labels(label, decision)
        return found


TPPS = _TppSeries(TPP_SERIES)


async def observe(record: AuditRecord) -> None:
    requests, latency, refusals = _series(record.route or "unmatched", record.method, record.status, record.decision,
                                          record.reason)
    requests.inc()
    latency.observe(record.latency_ms / 1000)
    if refusals is not None:
        refusals.inc()
    TPPS.child(record.client_id, record.decision).inc()


T = TypeVar("T")


def timed_append(append: Callable[[AuditRecord], Awaitable[T]]) -> Callable[[AuditRecord], Awaitable[T]]:
    """The audit chain's append, its duration observed in obgw_audit_append_seconds."""
    observe_seconds = AUDIT_APPEND.observe

    async def append_timed(record: AuditRecord) -> T:
        started = time.perf_counter()
        try:
            return await append(record)
        finally:
            observe_seconds(time.perf_counter() - started)
    return append_timed


class ServiceMetrics:
    """One service's children, created once (Forward holds one per service)."""

    __slots__ = ("latency", "outcomes", "breaker", "_breaker_value")

    def __init__(self, service: str) -> None:
        self.latency = UPSTREAM_LATENCY.labels(service)
        self.outcomes = {outcome: UPSTREAM_CALLS.labels(service, outcome) for outcome in OUTCOMES}
        self.breaker = BREAKER_STATE.labels(service)
        self._breaker_value = 0
        self.breaker.set(0)

    def answered(self, seconds: float, status: int) -> None:
        self.latency.observe(seconds)
        self.outcomes[OUTCOMES[min(max(status // 100, 1), 5) - 1]].inc()

    def failed(self, seconds: float, outcome: str) -> None:
        self.latency.observe(seconds)
        self.outcomes[outcome].inc()

    def breaker_is(self, state: str) -> None:
        value = BREAKER_VALUES[state]
        if value != self._breaker_value:  # a gauge write is a file write in multiprocess mode: only on change
            self._breaker_value = value
            self.breaker.set(value)
