"""Back-end protection for Forward: a concurrency cap and a circuit breaker, one of each per service per worker.

Both answer at once and never queue: a caller that cannot be served now is told so with 503 and `Retry-After`,
so a slow or dead back-end cannot tie up the gateway's workers (Envoy's circuit breaking and outlier ejection,
reduced to what one asyncio worker needs). Both are plain counters on one event loop: no locks, no threads, no
timers; time is read from `time.monotonic` only when a call asks.

    closed ──(`failures` consecutive failures)──▶ open ──(`open_seconds` later)──▶ half-open
      ▲                                             ▲                                 │ one probe at a time
      └──────────────── the probe succeeds ─────────┼──────── the probe fails ────────┘

A failure is what says the back-end is unwell: a refused or reset connection, a timeout, a 5xx answer. A 4xx is a
success (the back-end answered, the caller was wrong). Only the outcome of a call admitted in the breaker's current
period counts: a call that set out before the circuit opened says nothing about the back-end now.

    with guard.admit() as admission:   # Refusal here, before any I/O: backend.circuit_open or backend.busy
        ...                            # the upstream call
        admission.record(ok)           # leaving the block frees the slot, whatever happened
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from enum import Enum

from gateway.errors import Refusal
from gateway.policy.model import ServicePolicy

Clock = Callable[[], float]


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `failures` consecutive failures; `open_seconds` later lets exactly one probe through at a time.

    `admit()` returns the period the call was admitted in, to be handed back to `record()` (or `abandon()`), so a
    late outcome from an earlier period is told apart and ignored.
    """

    def __init__(self, failures: int, open_seconds: float, clock: Clock = time.monotonic) -> None:
        self.failures = failures
        self.open_seconds = open_seconds
        self._clock = clock
        self._state = State.CLOSED
        self._period = 0            # counts changes of state
        self._consecutive = 0       # failures in a row while closed
        self._open_until = 0.0
        self._probing = False       # half-open: the one probe is in flight

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() >= self._open_until:
            return State.HALF_OPEN
        return self._state

    def admit(self) -> int:
        """Let a call through, or raise 503 `backend.circuit_open` with Retry-After in whole seconds (at least 1)."""
        if self._state is State.OPEN:
            left = self._open_until - self._clock()
            if left > 0:
                raise _circuit_open(left)
            self._enter(State.HALF_OPEN)
        if self._state is State.HALF_OPEN:
            if self._probing:
                raise _circuit_open(0)
            self._probing = True
        return self._period

    def record(self, period: int, ok: bool) -> None:
        """The outcome of a call admitted in `period`."""
        if period != self._period:
            return
        if self._state is State.HALF_OPEN:
            self._probing = False
            if ok:
                self._enter(State.CLOSED)
            else:
                self._open()
        elif ok:
            self._consecutive = 0
        else:
            self._consecutive += 1
            if self._consecutive >= self.failures:
                self._open()

    def abandon(self, period: int) -> None:
        """A call admitted in `period` ended without an outcome (cancelled, or refused by the cap): a probe's turn
        passes to the next call."""
        if period == self._period and self._state is State.HALF_OPEN:
            self._probing = False

    def _open(self) -> None:
        self._enter(State.OPEN)
        self._open_until = self._clock() + self.open_seconds

    def _enter(self, state: State) -> None:
        self._state, self._period = state, self._period + 1
        self._consecutive, self._probing = 0, False


def _circuit_open(seconds_left: float) -> Refusal:
    return Refusal("backend.circuit_open", headers={"Retry-After": str(max(1, math.ceil(seconds_left)))})


class ConcurrencyLimit:
    """At most `limit` calls in flight; the next is refused at once with 503 `backend.busy`, never queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def acquire(self) -> None:
        if self.in_flight >= self.limit:
            raise Refusal("backend.busy", headers={"Retry-After": "1"})
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1


class BackendGuard:
    """What Forward asks before it calls one service: the breaker first (its answer says more), then the cap."""

    def __init__(self, service: ServicePolicy, clock: Clock = time.monotonic) -> None:
        self.breaker = CircuitBreaker(service.breaker_failures, service.breaker_open_seconds, clock)
        self.slots = ConcurrencyLimit(service.max_concurrent)

    def admit(self) -> Admission:
        period = self.breaker.admit()
        try:
            self.slots.acquire()
        except Refusal:
            self.breaker.abandon(period)
            raise
        return Admission(self, period)


class Admission:
    """One admitted call. `record(ok)` once with its outcome; leaving the `with` block frees its slot."""

    __slots__ = ("_guard", "_period", "_recorded")

    def __init__(self, guard: BackendGuard, period: int) -> None:
        self._guard, self._period, self._recorded = guard, period, False

    def record(self, ok: bool) -> None:
        if not self._recorded:
            self._recorded = True
            self._guard.breaker.record(self._period, ok)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._recorded:
            self._guard.breaker.abandon(self._period)
        self._guard.slots.release()
