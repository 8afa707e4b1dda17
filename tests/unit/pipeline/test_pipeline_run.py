"""Pipeline.run: request hooks forward, response hooks backward over the stages that ran; a stage may answer the
call itself; the stages that ran see a refusal (or a fault) before it is rendered, with the right reason."""
from __future__ import annotations

import asyncio

import pytest

from gateway.call import Call, Upstream
from gateway.errors import Refusal
from gateway.pipeline import Pipeline


class Stage:
    def __init__(self, name: str, log: list, *, answer: bool = False, refuse: str | None = None,
                 fault: bool = False) -> None:
        self.name, self.log, self.answer, self.refuse, self.fault = name, log, answer, refuse, fault

    async def on_request(self, call: Call) -> None:
        self.log.append(f"{self.name}>")
        if self.refuse:
            raise Refusal(self.refuse)
        if self.fault:
            raise KeyError("a bug")
        if self.answer:
            call.upstream = Upstream(200, [], b"replayed")

    async def on_response(self, call: Call) -> None:
        self.log.append(f"<{self.name}")

    async def on_abort(self, call: Call, refusal: Refusal) -> None:
        self.log.append(f"!{self.name}:{refusal.reason}")


def _run(*stages) -> None:
    asyncio.run(Pipeline(stages).run(Call(interaction_id="i", ts="t", started=0.0, method="POST")))


def test_hooks_run_forward_then_backward():
    log: list = []
    _run(Stage("a", log), Stage("b", log), Stage("c", log))
    assert log == ["a>", "b>", "c>", "<c", "<b", "<a"]


def test_a_stage_that_answers_stops_the_request_hooks_and_only_the_stages_that_ran_respond():
    log: list = []
    _run(Stage("a", log), Stage("replay", log, answer=True), Stage("forward", log))
    assert log == ["a>", "replay>", "<replay", "<a"]


def test_a_refusal_is_shown_to_the_stages_that_ran_before_it():
    log: list = []
    with pytest.raises(Refusal):
        _run(Stage("a", log), Stage("b", log), Stage("admit", log, refuse="payment.consent_mismatch"), Stage("c", log))
    assert log == ["a>", "b>", "admit>", "!b:payment.consent_mismatch", "!a:payment.consent_mismatch"]


@pytest.mark.parametrize("last, reason", [(False, "error.unexpected"), (True, "backend.unanswered")])
def test_a_fault_is_an_unknown_outcome_only_when_the_stage_that_calls_the_bank_failed(last, reason):
    log: list = []
    stages = [Stage("a", log), Stage("faulty", log, fault=True)] + ([] if last else [Stage("forward", log)])
    with pytest.raises(KeyError):
        _run(*stages)
    assert log == ["a>", "faulty>", f"!a:{reason}"]
