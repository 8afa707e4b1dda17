"""Pipeline.run, the stage contract (gateway.call.Stage): request hooks forward until one says STOP, response hooks
backward over the stages that ran; the stages that ran see a refusal (or a fault) before it is rendered, with the
reason the failing stage's `calls_bank` decides; only the hooks a stage defines are called."""
from __future__ import annotations

import asyncio

import pytest

from gateway.call import CONTINUE, STOP, Call, Flow, Stage, Upstream
from gateway.errors import Refusal
from gateway.pipeline import Pipeline


class Logged(Stage):
    def __init__(self, name: str, log: list, *, answer: bool = False, refuse: str | None = None,
                 fault: bool = False, calls_bank: bool = False) -> None:
        self.name, self.log, self.answer, self.refuse, self.fault = name, log, answer, refuse, fault
        self.calls_bank = calls_bank

    async def on_request(self, call: Call) -> Flow:
        self.log.append(f"{self.name}>")
        if self.refuse:
            raise Refusal(self.refuse)
        if self.fault:
            raise KeyError("a bug")
        if self.answer:
            call.upstream = Upstream(200, [], b"replayed")
            return STOP
        return CONTINUE

    async def on_response(self, call: Call) -> None:
        self.log.append(f"<{self.name}")

    async def on_abort(self, call: Call, refusal: Refusal) -> None:
        self.log.append(f"!{self.name}:{refusal.reason}")


class ResponseOnly(Stage):
    """Has only a response hook (as Minimise): it is passed on the way in, and still unwraps on the way back."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    async def on_response(self, call: Call) -> None:
        self.log.append(f"<{self.name}")


def _run(*stages) -> Call:
    call = Call(interaction_id="i", ts="t", started=0.0, method="POST")
    asyncio.run(Pipeline(stages).run(call))
    return call


def test_hooks_run_forward_then_backward():
    log: list = []
    _run(Logged("a", log), ResponseOnly("b", log), Logged("c", log))
    assert log == ["a>", "c>", "<c", "<b", "<a"]


def test_stop_ends_the_request_hooks_and_only_the_stages_that_ran_respond():
    log: list = []
    call = _run(Logged("a", log), Logged("replay", log, answer=True), ResponseOnly("minimise", log),
                Logged("forward", log))
    assert log == ["a>", "replay>", "<replay", "<a"]
    assert call.upstream.body == b"replayed"


def test_an_answer_alone_does_not_stop_the_chain():
    """The runner goes by the Flow a stage returns, never by whether `call.upstream` is set."""
    class Sets(Stage):
        async def on_request(self, call: Call) -> Flow:
            call.upstream = Upstream(200, [], b"early")
            return CONTINUE

    log: list = []
    _run(Sets(), Logged("next", log))
    assert log == ["next>", "<next"]


def test_a_refusal_is_shown_to_the_stages_that_ran_before_it():
    log: list = []
    with pytest.raises(Refusal):
        _run(Logged("a", log), ResponseOnly("b", log), Logged("c", log),
             Logged("admit", log, refuse="payment.consent_mismatch"), Logged("d", log))
    assert log == ["a>", "c>", "admit>", "!c:payment.consent_mismatch", "!a:payment.consent_mismatch"]


@pytest.mark.parametrize("calls_bank, reason", [(False, "error.unexpected"), (True, "backend.unanswered")])
def test_a_fault_is_an_unknown_outcome_only_in_a_stage_that_calls_the_bank(calls_bank, reason):
    log: list = []
    with pytest.raises(KeyError):
        _run(Logged("a", log), Logged("faulty", log, fault=True, calls_bank=calls_bank), Logged("after", log))
    assert log == ["a>", "faulty>", f"!a:{reason}"]


def test_a_fault_before_the_stage_that_calls_the_bank_left_it_untouched():
    log: list = []
    with pytest.raises(KeyError):
        _run(Logged("a", log), Logged("faulty", log, fault=True), Logged("forward", log, calls_bank=True))
    assert log == ["a>", "faulty>", "!a:error.unexpected"]


def test_a_hook_left_as_the_default_is_never_called(monkeypatch):
    called: list = []

    async def spy(self, *args):
        called.append(args)

    for name in ("on_request", "on_response", "on_abort"):
        monkeypatch.setattr(Stage, name, spy)

    class Bare(Stage):
        """Defines no hook: it is passed, at no cost, on every way through."""

    log: list = []
    _run(Bare(), Logged("a", log), Bare())
    with pytest.raises(Refusal):
        _run(Bare(), Logged("a", log), Logged("admit", log, refuse="token.revoked"))
    assert called == [] and log == ["a>", "<a", "a>", "admit>", "!a:token.revoked"]


def test_the_stages_that_call_the_bank_say_so():
    from gateway.consents.api import AccountAccessConsents
    from gateway.payments.idempotency import Idempotency
    from gateway.pipeline.forward import Forward

    assert Forward.calls_bank is True
    assert Idempotency.calls_bank is False and AccountAccessConsents.calls_bank is False
