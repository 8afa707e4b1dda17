"""The circuit breaker and the concurrency cap (pipeline/breaker.py), on a fake clock."""
import pytest

from gateway.errors import Refusal
from gateway.pipeline.breaker import (
    BackendGuard,
    CircuitBreaker,
    ConcurrencyLimit,
    State,
)
from gateway.policy.model import ServicePolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def breaker(clock):
    return CircuitBreaker(failures=3, open_seconds=10, clock=clock)


def _fail(breaker, times=1):
    for _ in range(times):
        breaker.record(breaker.admit(), ok=False)


def _refusal(action) -> Refusal:
    with pytest.raises(Refusal) as refused:
        action()
    return refused.value


def test_it_opens_after_the_configured_consecutive_failures_and_refuses_at_once(breaker):
    _fail(breaker, 2)
    assert breaker.state is State.CLOSED
    _fail(breaker)
    assert breaker.state is State.OPEN
    refusal = _refusal(breaker.admit)
    assert refusal.reason == "backend.circuit_open" and refusal.status == 503
    assert refusal.headers == {"Retry-After": "10"}


def test_a_success_resets_the_count_of_consecutive_failures(breaker):
    _fail(breaker, 2)
    breaker.record(breaker.admit(), ok=True)
    _fail(breaker, 2)
    assert breaker.state is State.CLOSED
    _fail(breaker)
    assert breaker.state is State.OPEN


def test_retry_after_is_the_whole_seconds_until_half_open_and_at_least_one(breaker, clock):
    _fail(breaker, 3)
    clock.now += 0.5
    assert _refusal(breaker.admit).headers["Retry-After"] == "10"  # 9.5 s left, rounded up
    clock.now += 8.6
    assert _refusal(breaker.admit).headers["Retry-After"] == "1"   # 0.9 s left
    clock.now += 0.89
    assert _refusal(breaker.admit).headers["Retry-After"] == "1"   # 0.01 s left: never 0


def test_half_open_lets_exactly_one_probe_through_and_its_success_closes(breaker, clock):
    _fail(breaker, 3)
    clock.now += 10
    assert breaker.state is State.HALF_OPEN
    probe = breaker.admit()
    for _ in range(3):  # others are refused while the probe is out
        assert _refusal(breaker.admit).headers == {"Retry-After": "1"}
    breaker.record(probe, ok=True)
    assert breaker.state is State.CLOSED
    for _ in range(5):
        breaker.record(breaker.admit(), ok=True)
    _fail(breaker, 2)
    assert breaker.state is State.CLOSED  # closed afresh: the count starts again


def test_a_failed_probe_reopens_for_another_whole_period(breaker, clock):
    _fail(breaker, 3)
    clock.now += 12
    breaker.record(breaker.admit(), ok=False)
    assert breaker.state is State.OPEN
    assert _refusal(breaker.admit).headers["Retry-After"] == "10"
    clock.now += 9.9
    _refusal(breaker.admit)
    clock.now += 0.1
    breaker.record(breaker.admit(), ok=True)
    assert breaker.state is State.CLOSED


def test_a_probe_that_ends_without_an_outcome_passes_its_turn_on(breaker, clock):
    _fail(breaker, 3)
    clock.now += 10
    breaker.abandon(breaker.admit())  # e.g. the caller went away
    assert breaker.state is State.HALF_OPEN
    breaker.record(breaker.admit(), ok=True)
    assert breaker.state is State.CLOSED


def test_outcomes_of_calls_admitted_before_the_state_changed_are_ignored(breaker, clock):
    early = [breaker.admit() for _ in range(4)]          # in flight while closed
    for period in early[:3]:
        breaker.record(period, ok=False)
    assert breaker.state is State.OPEN
    breaker.record(early[3], ok=True)                     # a late success does not close it ...
    assert breaker.state is State.OPEN
    clock.now += 10
    probe = breaker.admit()
    breaker.record(early[3], ok=False)                    # ... and a late failure neither re-opens it
    breaker.abandon(early[3])                             # nor frees the probe's turn
    assert _refusal(breaker.admit).reason == "backend.circuit_open"
    breaker.record(probe, ok=True)
    assert breaker.state is State.CLOSED


def test_the_cap_refuses_the_call_over_the_limit_at_once_and_frees_slots():
    cap = ConcurrencyLimit(2)
    cap.acquire()
    cap.acquire()
    refusal = _refusal(cap.acquire)
    assert refusal.reason == "backend.busy" and refusal.status == 503 and refusal.headers == {"Retry-After": "1"}
    cap.release()
    cap.acquire()
    assert cap.in_flight == 2


def _guard(clock, max_concurrent=2):
    service = ServicePolicy("echo", "http://127.0.0.1:1", 1000, 5000, 100, max_concurrent=max_concurrent,
                            breaker_failures=3, breaker_open_seconds=10)
    return BackendGuard(service, clock)


def test_the_guard_frees_the_slot_however_the_call_ends(clock):
    guard = _guard(clock)
    with guard.admit() as admission:
        admission.record(ok=True)
    with pytest.raises(RuntimeError), guard.admit():
        raise RuntimeError("the call blew up")
    assert guard.slots.in_flight == 0
    with guard.admit(), guard.admit():
        assert _refusal(guard.admit).reason == "backend.busy"
    assert guard.slots.in_flight == 0


def test_an_admission_records_one_outcome_only(clock):
    guard = _guard(clock)
    for _ in range(3):
        with guard.admit() as admission:
            admission.record(ok=False)
            admission.record(ok=True)  # ignored: the first outcome stands
    assert guard.breaker.state is State.OPEN


def test_the_breaker_is_asked_first_and_its_refusal_takes_no_slot(clock):
    guard = _guard(clock, max_concurrent=1)
    for _ in range(3):
        with guard.admit() as admission:
            admission.record(ok=False)
    assert _refusal(guard.admit).reason == "backend.circuit_open"
    assert guard.slots.in_flight == 0
    clock.now += 10
    with guard.admit() as probe:                       # the probe holds the one slot
        assert _refusal(guard.admit).reason == "backend.circuit_open"
        probe.record(ok=True)
    assert guard.slots.in_flight == 0


def test_a_half_open_call_refused_by_the_cap_leaves_the_probe_turn_free(clock):
    guard = _guard(clock, max_concurrent=1)
    for _ in range(3):
        with guard.admit() as admission:
            admission.record(ok=False)
    clock.now += 10
    guard.slots.acquire()                              # full: the would-be probe is refused by the cap ...
    assert _refusal(guard.admit).reason == "backend.busy"
    guard.slots.release()
    with guard.admit() as probe:                       # ... and the next call is the probe
        probe.record(ok=True)
    assert guard.breaker.state is State.CLOSED
