"""Cross-cutting stages as pure ASGI middleware, wrapping every call on the main listener (order: app.py).

InteractionId → Audit → RenderErrors → RefuseUnparsed → TransportIdentity → AnonymousThrottle → router
"""
from __future__ import annotations

import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import logs, trace
from gateway.audit.record import AuditRecord
from gateway.call import SCOPE_KEY, Call
from gateway.client_address import forwarded_for, source_of
from gateway.errors import Refusal, oauth_error_body, ob_error_body
from gateway.pipeline.identity import (
    CLIENT_CERT,
    CLIENT_CERT_CHAIN,
    Network,
    ProxyCertificateVerifier,
    from_tls_extension,
    is_trusted_proxy,
)
from gateway.store.redis import RedisError

log = logging.getLogger("obgw")
INTERACTION_ID = b"x-fapi-interaction-id"


def _valid_uuid(value: bytes) -> str | None:
    try:
        return str(uuid.UUID(value.decode("ascii")))
    except (ValueError, UnicodeDecodeError):
        return None


class InteractionId:
    """Creates the Call; echoes `x-fapi-interaction-id` (FAPI 1 Baseline §6.2.1-11) or sets a new UUID on every answer,
    with the headers the stages put on `call.response_headers`. Continues the caller's W3C `traceparent` or starts
    a trace (trace.py); the trace is logged and sent to the bank, not answered.

    A value that is not a UUID (RFC 4122, as FAPI requires) is replaced, so nothing the caller sent is reflected.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = traceparent = None
        for key, value in scope["headers"]:
            if key == INTERACTION_ID:
                given = value
            elif key == trace.HEADER:
                traceparent = value
        interaction_id = (_valid_uuid(given) if given else None) or str(uuid.uuid4())
        now = datetime.now(timezone.utc)
        scope[SCOPE_KEY] = Call(interaction_id=interaction_id, ts=now.isoformat(timespec="milliseconds"),
                                started=time.perf_counter(), method=scope["method"],
                                trace=trace.continue_or_start(traceparent))
        header = (INTERACTION_ID, interaction_id.encode())
        call = scope[SCOPE_KEY]

        async def send_with_id(message: Message) -> None:
            # Every answer, refusals included, carries the interaction id and what the stages decided belongs on
            # it (the RateLimit headers), set once here.
            if message["type"] == "http.response.start":
                message["headers"] = [*(h for h in message.get("headers", ()) if h[0].lower() != INTERACTION_ID),
                                      *call.response_headers, header]
            await send(message)

        await self.app(scope, receive, send_with_id)


RecordSink = Callable[[AuditRecord], Awaitable[None]]


class Audit:
    """Turns every finished call (refusals too) into one AuditRecord, stores it, then observes it (metrics) and
    writes its `request` log line (logs.py).

    The response is held until the record is stored, so a crash after a caller saw an answer cannot lose its record.
    Fail closed: if the record cannot be stored, the held answer is dropped and the caller gets 503 `audit.unavailable`.
    """

    def __init__(self, app: ASGIApp, store: RecordSink, observers: Sequence[RecordSink] = (),
                 subject: Callable[[str], str] | None = None) -> None:
        """`subject` turns the bank's customer id into the pseudonym the record names the customer by."""
        self.app = app
        self.store = store
        self.observers = tuple(observers)
        self.subject = subject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        call: Call = scope[SCOPE_KEY]
        start: Message | None = None
        parts: list[bytes] = []
        recorded = False

        async def hold(message: Message) -> None:
            nonlocal start, recorded
            if message["type"] == "http.response.start":
                start = message
                call.status = message["status"]
                return
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            recorded = True
            if await self._record(call):
                assert start is not None  # ASGI: the start comes before the body
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(parts)})
                return
            refusal = Refusal("audit.unavailable", headers={"Retry-After": "1"})
            call.status, call.reason, call.decision = refusal.status, refusal.reason, "error"
            await send_refusal(send, refusal, ob_error_body(refusal, call.interaction_id))

        try:
            await self.app(scope, receive, hold)
        finally:
            if not recorded:  # the app ended without a complete answer (client gone, or a bug past RenderErrors)
                call.status, call.decision = call.status or 500, "error"
                await self._record(call)

    async def _record(self, call: Call) -> bool:
        """Store the call's record; False if it could not be stored."""
        if call.decision == "allow" and call.status >= 500:
            call.decision = "error"
        record = AuditRecord(
            ts=call.ts, interaction_id=call.interaction_id, method=call.method, route=call.route_template,
            status=call.status, decision=call.decision, reason=call.reason,
            latency_ms=round((time.perf_counter() - call.started) * 1000, 3), client_id=call.client_id,
            consent_id=call.consent_id, cert_thumbprint=call.certificate.thumbprint if call.certificate else None,
            subject=self.subject(call.customer_id) if call.customer_id and self.subject else None,
            unattended=True if call.unattended else None, delivered=call.delivered or None,
        )
        try:
            await self.store(record)
        except Exception:
            log.exception("could not store the audit record of interaction %s", call.interaction_id)
            return False
        for observe in self.observers:
            await observe(record)
        logs.request_ended(call.interaction_id, call.trace.trace_id if call.trace else None, call.client_id,
                           call.method, record.route, record.status, record.latency_ms, record.decision, record.reason)
        return True


class RenderErrors:
    """The one place an error body is written: a Refusal → its catalogued answer; anything else → 500.

    Authorization-server paths answer in OAuth 2.0 error JSON (RFC 6749 §5.2), everything else in UK OB
    `OBErrorResponse1`, whose `Id` is the interaction id so a TPP can quote it to the bank.
    """

    def __init__(self, app: ASGIApp, oauth_prefixes: Sequence[str] = ("/oauth2/",)) -> None:
        self.app = app
        self.oauth_prefixes = tuple(oauth_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        call: Call = scope[SCOPE_KEY]
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Refusal as refusal:
            call.refuse(refusal.reason)
            if not started:
                await self._render(scope, call, refusal, send)
        except RedisError:
            # Fail closed: whatever needed Redis did not happen (no session, no consent change, nothing forwarded).
            log.warning("Redis unavailable in interaction %s", call.interaction_id)
            call.reason, call.decision = "store.unavailable", "error"
            if not started:
                await self._render(scope, call, Refusal("store.unavailable", headers={"Retry-After": "1"}), send)
        except Exception:
            log.exception("unexpected error in interaction %s", call.interaction_id)
            call.reason, call.decision = "error.unexpected", "error"
            if not started:
                await self._render(scope, call, Refusal("error.unexpected"), send)

    async def _render(self, scope: Scope, call: Call, refusal: Refusal, send: Send) -> None:
        oauth = scope["path"].startswith(self.oauth_prefixes)
        body = oauth_error_body(refusal) if oauth else ob_error_body(refusal, call.interaction_id)
        await send_refusal(send, refusal, body)


async def send_refusal(send: Send, refusal: Refusal, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


PARSER_REFUSAL = "obgw.parser_refusal"  # scope key server.py sets on a request its HTTP parser refused


class RefuseUnparsed:
    """A request the HTTP parser refused (malformed, headers over the limits: server.py) is brought through the
    stages above only to be refused: so it is answered in the standard shape, with an interaction id, and audited.
    Only server.py sets the scope key; nothing a client sends can."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get(PARSER_REFUSAL):
            raise Refusal(scope[PARSER_REFUSAL])
        await self.app(scope, receive, send)


class TransportIdentity:
    """Sets `call.certificate` from the verified TLS peer, or from RFC 9440 headers sent by a trusted proxy; and, from
    a trusted proxy only, the client's address it appended to `X-Forwarded-For` as `scope["client"]`
    (client_address.py).

    Envoy's rfc9440 filter rule: the identity headers are stripped from every request first, and only a configured
    proxy's value is ever read, so no TPP can claim another's certificate by sending a header.
    """

    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[Network] = (),
                 verifier: ProxyCertificateVerifier | None = None) -> None:
        self.app = app
        self.trusted_proxies = tuple(trusted_proxies)
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        call: Call = scope[SCOPE_KEY]
        forwarded = []
        headers = []
        for key, value in scope["headers"]:
            if key in (CLIENT_CERT, CLIENT_CERT_CHAIN):
                if key == CLIENT_CERT:
                    forwarded.append(value)
                continue
            headers.append((key, value))
        scope = dict(scope, headers=headers)
        if self.verifier is not None and is_trusted_proxy(scope.get("client"), self.trusted_proxies):
            # RFC 9440 §2.2: one certificate, one field. Two mean a client-sent one got past the proxy's strip:
            # which the proxy verified cannot be told, so neither is taken.
            if len(forwarded) > 1:
                raise Refusal("identity.bad_certificate", "Client-Cert is given more than once.")
            call.certificate = self.verifier.verify(forwarded[0]) if forwarded else None
            address = forwarded_for(headers)
            if address is not None:
                scope["client"] = (address, 0)
        else:
            call.certificate = from_tls_extension(scope)
        await self.app(scope, receive, send)


class AnonymousThrottle:
    """Requests without a verified client certificate (customers' pages, and TPP endpoints, which refuse them anyway)
    are counted per source address (client_address.py) in this worker's memory, and refused 429 `request.throttled`
    with Retry-After past the limit: so anonymous traffic costs Redis at most its audit record, never a session,
    a count or a page's work (OWASP API4:2023, unrestricted resource consumption).

    Where it sits: after TransportIdentity, which says whether a certificate was verified and which address the
    caller is; inside RenderErrors and Audit, so a refusal is answered in the standard shape and audited like any
    other; before the router, so nothing a page or endpoint does is spent on it. A cookie is not an exemption: anyone
    can send one, and telling a real session from a made-up one would need Redis.

    A token bucket per address (RATE per second, BURST at once), in a bounded LRU (MAX_SOURCES addresses, the least
    recently seen forgotten first: a few MB at most, no Redis). Per worker: with N workers an address gets up to N
    times the rate. The limits are far above what people do: a page load is one request (the pages load nothing
    else), so customers behind one NAT would need dozens of page loads a second, all the time, to meet them.
    """

    RATE = 50.0        # requests per second, sustained, per address and worker
    BURST = 200        # requests at once
    MAX_SOURCES = 16_384

    def __init__(self, app: ASGIApp, rate: float = RATE, burst: int = BURST, max_sources: int = MAX_SOURCES) -> None:
        self.app = app
        self.rate, self.burst, self.max_sources = rate, burst, max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address → (tokens, when)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope[SCOPE_KEY].certificate is None:
            wait = self.take(source_of(scope))
            if wait:
                raise Refusal("request.throttled", headers={"Retry-After": str(max(1, math.ceil(wait)))})
        await self.app(scope, receive, send)

    def take(self, source: str) -> float:
        """0 if the address may make a request now (one is counted), else the seconds until it may."""
        now = time.monotonic()
        tokens, then = self._buckets.pop(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        allowed = tokens >= 1
        self._buckets[source] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return 0.0 if allowed else (1 - tokens) / self.rate
