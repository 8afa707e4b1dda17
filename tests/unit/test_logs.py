"""The JSON log lines (logs.py) and the W3C trace context (trace.py): what a line holds, what it never holds."""
from __future__ import annotations

import asyncio
import io
import logging

import httpx
import orjson
import pytest
from starlette.routing import Mount, Router

from gateway import logs, trace
from gateway.call import STOP, Call, Flow, Stage, Upstream
from gateway.pipeline import Pipeline
from gateway.pipeline.endpoint import ResourceEndpoint
from gateway.pipeline.middleware import Audit, InteractionId, RenderErrors

TOKEN = "eyJhbGciOiJQUzI1NiJ9.c2VjcmV0LXRva2VuLWNsYWltcw.c2lnbmF0dXJl"
CUSTOMER = "customer-8472-jane-doe"
CONSENT = "aac-3f1e9c2b-consent"
ACCOUNT = "22289-account-number"
TRACE_ID, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


class Admitted(Stage):
    """What Admit and Forward leave on a call: a client, a consent, a customer; the bank's answer."""

    def __init__(self) -> None:
        self.seen: list[Call] = []

    async def on_request(self, call: Call) -> Flow:
        call.client_id, call.consent_id, call.customer_id = "tpp-demo", CONSENT, CUSTOMER
        self.seen.append(call)
        call.upstream = Upstream(200, [(b"content-type", b"application/json")],
                                 orjson.dumps({"Data": {"AccountId": ACCOUNT, "Name": "Jane Doe"}}))
        return STOP


@pytest.fixture
def lines():
    """The JSON lines the gateway's loggers write while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # (the test's own HTTP client logs its requests: not the gateway's lines)
    yield lambda: [line for line in map(orjson.loads, stream.getvalue().splitlines()) if line["logger"] != "httpx"]
    root.removeHandler(handler)
    root.setLevel(old_level)


def _call(app, path: str, headers: dict[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gw") as client:
            return await client.get(path, headers=headers)
    return asyncio.run(go())


def _stack(stage: Stage):
    async def store(record) -> None:
        pass
    router = Router(routes=[Mount("/open-banking", app=ResourceEndpoint(Pipeline((stage,)),
                                                                         template="/open-banking/x/{AccountId}"))])
    return InteractionId(Audit(RenderErrors(router), store=store, subject=lambda customer: "pseudonym-of-" + customer))


def test_one_request_line_per_call_with_the_named_fields_and_nothing_of_the_request(lines):
    stage = Admitted()
    response = _call(_stack(stage), f"/open-banking/x/{ACCOUNT}?fromBookingDateTime=2026-01-01&pin=1234",
                     {"authorization": f"Bearer {TOKEN}", "cookie": "session=s3cr3t-session",
                      "traceparent": f"00-{TRACE_ID}-{PARENT}-01", "x-fapi-customer-ip-address": "198.51.100.7"})
    assert response.status_code == 200
    [line] = [line for line in lines() if line["event"] == "request"]
    assert line["level"] == "info" and line["logger"] == "obgw.request" and line["ts"].endswith("Z")
    assert line["interaction_id"] == response.headers["x-fapi-interaction-id"]
    assert line["trace_id"] == TRACE_ID
    assert {k: line[k] for k in ("client_id", "method", "route", "status", "decision", "reason")} == {
        "client_id": "tpp-demo", "method": "GET", "route": "/open-banking/x/{AccountId}", "status": 200,
        "decision": "allow", "reason": None}
    assert isinstance(line["latency_ms"], float)
    text = orjson.dumps(lines()).decode()
    for secret in (TOKEN, "s3cr3t-session", CUSTOMER, "pseudonym-of", CONSENT, ACCOUNT, "Jane Doe", "1234",
                   "198.51.100.7", PARENT):
        assert secret not in text


def test_a_refusal_is_one_line_with_its_reason(lines):
    class Refuse(Stage):
        async def on_request(self, call: Call) -> Flow:
            from gateway.errors import Refusal
            raise Refusal("token.missing")
    response = _call(_stack(Refuse()), "/open-banking/x/1", {})
    [line] = [line for line in lines() if line["event"] == "request"]
    assert (line["status"], line["decision"], line["reason"]) == (response.status_code, "refuse", "token.missing")
    assert len(line["trace_id"]) == 32  # a trace started for it


def test_a_level_above_info_writes_no_request_lines(lines):
    logging.getLogger().setLevel(logging.WARNING)
    logs.REQUEST.setLevel(logging.NOTSET)
    _call(_stack(Admitted()), "/open-banking/x/1", {})
    assert [line for line in lines() if line["event"] == "request"] == []


def test_an_exception_line_carries_its_type_and_traceback():
    record = logging.LogRecord("obgw", logging.ERROR, __file__, 1, "could not store the audit record", (), None)
    try:
        raise ConnectionError("down")
    except ConnectionError:
        import sys
        record.exc_info = sys.exc_info()
    line = orjson.loads(logs.JsonFormatter().format(record))
    assert line["error"] == "ConnectionError" and "Traceback" in line["traceback"]


def test_the_dict_config_gives_every_logger_json_on_stderr(capsys):
    logs.configure("info")
    try:
        logs.event(logging.getLogger("obgw"), logging.INFO, "startup", workers=2)
        logging.getLogger("uvicorn.error").warning("uvicorn says")
        lines_ = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert [(line["event"], line.get("workers")) for line in lines_] == [("startup", 2), ("uvicorn says", None)]
    finally:
        logging.getLogger().handlers.clear()


# trace.py (W3C Trace Context level 1)

@pytest.mark.parametrize("value", [
    f"00-{TRACE_ID}-{PARENT}-01", f"00-{TRACE_ID}-{PARENT}-00", f"01-{TRACE_ID}-{PARENT}-03-whatever-comes",
])
def test_a_valid_traceparent_is_continued_with_a_new_span(value):
    continued = trace.continue_or_start(value.encode())
    assert continued.trace_id == TRACE_ID and continued.parent_id == PARENT
    assert continued.span_id != PARENT and len(continued.span_id) == 16
    assert continued.traceparent == f"00-{TRACE_ID}-{continued.span_id}-{value[53:55] if value[0:2] == '00' else '01'}"


@pytest.mark.parametrize("value", [
    b"", b"garbage", f"ff-{TRACE_ID}-{PARENT}-01".encode(), f"00-{'0' * 32}-{PARENT}-01".encode(),
    f"00-{TRACE_ID}-{'0' * 16}-01".encode(), f"00-{TRACE_ID.upper()}-{PARENT}-01".encode(),
    f"00-{TRACE_ID}-{PARENT}-01-extra".encode(), f"00-{TRACE_ID}-{PARENT}-1".encode(), b"x" * 600,
], ids=["empty", "garbage", "version ff", "zero trace", "zero parent", "upper case", "00 with more", "short flags",
        "huge"])
def test_anything_else_starts_a_new_trace_and_reflects_nothing(value):
    started = trace.continue_or_start(value)
    assert started.parent_id is None and started.flags == "00"
    assert len(started.trace_id) == 32 and started.trace_id not in value.decode(errors="replace")
