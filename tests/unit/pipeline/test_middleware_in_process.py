"""The main listener's middleware in process (InteractionId → Audit → RenderErrors → TransportIdentity →
AnonymousThrottle), around a real ResourceEndpoint and Pipeline whose last stage is a stub, through
httpx.ASGITransport: what a caller sees (interaction id, error body, headers) and what the audit log gets (one
record per call, refusals and faults included)."""
from __future__ import annotations

import asyncio
import base64
import uuid

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.routing import Mount, Router

from gateway import pki
from gateway.call import STOP, Call, Flow, Stage, Upstream
from gateway.pipeline import Pipeline
from gateway.pipeline.endpoint import ResourceEndpoint
from gateway.pipeline.identity import RequireClientCertificate
from gateway.pipeline.middleware import AnonymousThrottle, Audit, InteractionId, RenderErrors, TransportIdentity
from gateway.store.redis import RedisError

ISSUED = pki.issue_client_cert(pki.make_ca("test-ca"), "tpp-demo")
CERT_PEM = ISSUED.cert.public_bytes(Encoding.PEM).decode()
THUMBPRINT = pki.thumbprint_sha256(ISSUED.cert)
RATE_HEADER = (b"ratelimit", b'"standard";r=99;t=1')


class Answer(Stage):
    """The bank, stubbed: answers with what reached it; `/bug` and `/redis` fail as a stage can."""

    async def on_request(self, call: Call) -> Flow:
        call.response_headers.append(RATE_HEADER)  # as Admit's `conclude` does, before a later stage may refuse
        if call.path.endswith("/bug"):
            raise KeyError("a bug")
        if call.path.endswith("/redis"):
            raise RedisError("connection refused")
        seen = {"headers": sorted(k.decode() for k, _ in call.headers), "thumbprint": call.certificate.thumbprint}
        call.upstream = Upstream(200, [(b"content-type", b"application/json")], orjson.dumps(seen))
        return STOP


class Stack:
    """The middleware as create_app orders it, its audit a list, or a store that fails (`audit_down`)."""

    def __init__(self, *, burst: int = AnonymousThrottle.BURST, audit_down: bool = False) -> None:
        self.records: list = []
        self.cert: str | None = CERT_PEM
        pipeline = Pipeline((RequireClientCertificate(), Answer()))
        router = Router(routes=[Mount("/open-banking", app=ResourceEndpoint(pipeline, template="/open-banking/x"))])

        async def store(record) -> None:
            if audit_down:
                raise ConnectionError("audit store down")
            self.records.append(record)

        self.app = InteractionId(Audit(RenderErrors(TransportIdentity(AnonymousThrottle(router, burst=burst))),
                                       store=store))

    async def tls(self, scope, receive, send) -> None:
        if self.cert:  # server.py's shape for a verified TLS peer
            scope["extensions"] = {"tls": {"client_cert_chain": [self.cert]}}
        await self.app(scope, receive, send)

    def get(self, *paths: str, **headers) -> list[httpx.Response]:
        async def go() -> list[httpx.Response]:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.tls), base_url="https://gw") as c:
                return [await c.get(path, headers=headers) for path in paths]
        return asyncio.run(go())


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["Id"] == response.headers["x-fapi-interaction-id"]  # OBErrorResponse1: quotable to the bank
    return response.status_code, body["Errors"][0]["ErrorCode"]


# InteractionId


def test_a_given_interaction_id_is_echoed_on_the_answer_and_in_the_audit():
    stack = Stack()
    given = str(uuid.uuid4())
    [response] = stack.get("/open-banking/ok", **{"x-fapi-interaction-id": given})
    assert response.status_code == 200
    assert response.headers["x-fapi-interaction-id"] == given
    assert [r.interaction_id for r in stack.records] == [given]


@pytest.mark.parametrize("given", [None, "not-a-uuid<script>"], ids=["absent", "not a uuid"])
def test_a_missing_or_invalid_interaction_id_is_replaced_by_a_new_uuid(given):
    stack = Stack()
    stack.cert = None  # refused, too: every answer carries one
    headers = {"x-fapi-interaction-id": given} if given else {}
    [response] = stack.get("/open-banking/ok", **headers)
    made = response.headers["x-fapi-interaction-id"]
    assert str(uuid.UUID(made)) == made and made != given
    assert response.headers.get_list("x-fapi-interaction-id") == [made]  # nothing the caller sent is reflected
    assert _error(response) == (401, "UK.OBIE.Field.Missing")
    assert [r.interaction_id for r in stack.records] == [made]


def test_each_call_gets_its_own_interaction_id():
    responses = Stack().get("/open-banking/ok", "/open-banking/ok")
    assert len({r.headers["x-fapi-interaction-id"] for r in responses}) == 2


def test_the_headers_a_stage_decided_are_on_the_answer_refusals_too():
    [ok, fault] = Stack().get("/open-banking/ok", "/open-banking/bug")
    assert ok.headers["ratelimit"] == fault.headers["ratelimit"] == RATE_HEADER[1].decode()


# Audit and RenderErrors


def test_a_refusal_is_rendered_in_the_ob_shape_and_audited_once():
    stack = Stack()
    stack.cert = None
    [response] = stack.get("/open-banking/ok")
    assert _error(response) == (401, "UK.OBIE.Field.Missing")
    assert response.headers["cache-control"] == "no-store"
    [record] = stack.records
    assert (record.status, record.decision, record.reason) == (401, "refuse", "identity.no_certificate")
    assert (record.route, record.method, record.cert_thumbprint) == ("/open-banking/x", "GET", None)


def test_an_answered_call_is_audited_once_with_the_certificate_it_came_with():
    stack = Stack()
    [response] = stack.get("/open-banking/ok")
    assert response.json()["thumbprint"] == THUMBPRINT
    [record] = stack.records
    assert (record.status, record.decision, record.reason, record.cert_thumbprint) == (200, "allow", None, THUMBPRINT)


@pytest.mark.parametrize("path, status, reason", [
    ("/open-banking/bug", 500, "error.unexpected"),
    ("/open-banking/redis", 503, "store.unavailable"),
])
def test_a_fault_is_answered_without_its_detail_and_audited_as_an_error(path, status, reason):
    stack = Stack()
    [response] = stack.get(path)
    assert _error(response) == (status, "UK.OBIE.UnexpectedError")
    assert b"a bug" not in response.content and b"connection refused" not in response.content
    assert ("retry-after" in response.headers) == (status == 503)
    assert [(r.status, r.decision, r.reason) for r in stack.records] == [(status, "error", reason)]


def test_an_answer_that_cannot_be_audited_is_not_sent():
    """Fail closed: the held 200 is dropped and the caller is told to retry."""
    [response] = Stack(audit_down=True).get("/open-banking/ok")
    assert _error(response) == (503, "UK.OBIE.UnexpectedError")
    assert response.headers["retry-after"] == "1"
    assert "thumbprint" not in response.text


# TransportIdentity and AnonymousThrottle


def test_a_client_sent_certificate_header_is_stripped_and_never_trusted():
    """No trusted proxy configured: Client-Cert from the caller neither reaches a stage nor proves anything."""
    stack = Stack()
    forged = b":" + base64.b64encode(ISSUED.cert.public_bytes(Encoding.DER)) + b":"
    [answered] = stack.get("/open-banking/ok", **{"client-cert": forged.decode(), "client-cert-chain": "x"})
    assert "client-cert" not in answered.json()["headers"] and "client-cert-chain" not in answered.json()["headers"]
    stack.cert = None
    [refused] = stack.get("/open-banking/ok", **{"client-cert": forged.decode()})
    assert _error(refused) == (401, "UK.OBIE.Field.Missing")


def test_calls_without_a_certificate_are_throttled_past_the_burst_and_audited():
    stack = Stack(burst=2)
    stack.cert = None
    responses = stack.get(*["/open-banking/ok"] * 3)
    assert [r.status_code for r in responses] == [401, 401, 429]
    assert _error(responses[2]) == (429, "OBGW.Rules.RateLimitExceeded")
    assert int(responses[2].headers["retry-after"]) >= 1
    assert [r.reason for r in stack.records] == ["identity.no_certificate"] * 2 + ["request.throttled"]
    stack.cert = CERT_PEM  # a verified TPP is never counted here (its limits are Admit's)
    assert [r.status_code for r in stack.get(*["/open-banking/ok"] * 3)] == [200] * 3
