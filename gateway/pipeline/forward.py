"""Forward: the one stage that talks to the bank's back-ends, through one pool of kept-alive connections per service
(upstream.py: HTTP/1.1 parsed by httptools, a sixth of aiohttp's CPU per call). Headers are allow-listed in
both directions, so hop-by-hop headers (RFC 9110 §7.6.1), the TPP's token, cookies, forwarding and identity headers
never reach the bank, and the bank's internal headers never reach the TPP. Back-end failures become catalogued
refusals (502/504) and a back-end 5xx body (possibly a stack trace) is never passed on, nor a 4xx body that is not
a UK OB OBErrorResponse1.

Each service is guarded per worker (breaker.py): a concurrency cap and a circuit breaker are asked before any I/O,
so a call to a back-end that is full or failing is answered 503 at once instead of waiting; every outcome is
recorded, and the slot is freed however the call ends. The route's `timeout_ms` bounds the whole exchange.

An https service is reached with the CA and client certificate its `tls` policy names (services.yaml). The bank gets
the call's W3C `traceparent` (trace.py) with the gateway's span as parent; each outcome feeds the service's metrics
(upstream latency, outcome, breaker state: admin/metrics.py).
"""
from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from urllib.parse import parse_qsl, urlencode

import orjson

from gateway.admin.metrics import ServiceMetrics
from gateway.call import STOP, Call, Flow, Stage, Upstream
from gateway.errors import Refusal, namespaced
from gateway.pipeline.breaker import Admission, BackendGuard, Clock
from gateway.pipeline.upstream import Unanswered, Unavailable, UpstreamPool
from gateway.policy import PolicySet, ServicePolicy
from gateway.policy.fields import WindowError, windows
from gateway.specs import first_problem

# What a TPP may say to the bank: content negotiation and the FAPI / UK OB headers. Anything else is dropped.
REQUEST_HEADERS = frozenset({
    b"accept", b"content-type", b"x-fapi-auth-date", b"x-fapi-customer-ip-address", b"x-fapi-interaction-id",
    b"x-customer-user-agent", b"x-idempotency-key", b"x-jws-signature",
})
CUSTOMER_HEADER = b"x-bank-customer-id"
CONSENT_HEADER = b"x-bank-consent-id"
DEBTOR_ACCOUNT_HEADER = b"x-bank-debtor-account-id"
AMOUNT_HEADER = b"x-bank-instructed-amount"
# What the bank may say to the TPP.
RESPONSE_HEADERS = frozenset({
    b"content-type", b"content-language", b"content-disposition", b"cache-control", b"etag", b"last-modified",
    b"x-jws-signature",
})


def _scoped_query(call: Call) -> str:
    """The TPP's query, with what the consent decides put in by the gateway: the selected accounts (so the bank
    fetches no others) and the transaction window narrowed to the consent's (so it fetches no more)."""
    route, entitlement = call.routed, call.entitlement
    if entitlement is None or (route.selected_accounts_param is None
                               and (route.fields is None or not route.fields.window)):
        return call.query.decode("latin-1")
    asked = dict(parse_qsl(call.query.decode("latin-1"), keep_blank_values=True))
    try:
        ours = windows(route.fields, asked, entitlement) if route.fields is not None else {}
    except WindowError as bad:
        raise Refusal("request.invalid_date", str(bad), path=bad.param) from None
    if route.selected_accounts_param:
        ours[route.selected_accounts_param] = ",".join(sorted(entitlement.accounts))
    window = route.fields.window if route.fields is not None else None
    theirs = {k: v for k, v in asked.items()
              if k != route.selected_accounts_param and not (window and k in (window.from_param, window.to_param))}
    return urlencode({**theirs, **ours})


def tls_context(service: ServicePolicy) -> ssl.SSLContext | None:
    """The TLS client context of a service with a `tls` policy: its CA (else the system's), its client certificate;
    TLS 1.2 at least, the certificate and host name always checked. None: the pool's default (https: system CAs)."""
    if service.tls is None:
        return None
    context = ssl.create_default_context(cafile=str(service.tls.ca_file) if service.tls.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if service.tls.cert_file is not None:
        context.load_cert_chain(service.tls.cert_file, service.tls.key_file)
    return context


def service_pool(service: ServicePolicy) -> UpstreamPool:
    """One worker's kept-alive connections to one back-end service."""
    return UpstreamPool(service.url, service.max_connections, service.connect_timeout_ms / 1000, tls_context(service))


def _ob_error(body: bytes) -> bytes | None:
    """A bank's error answer as the TPP may see it: a UK OB OBErrorResponse1 (CONTRACT §5), the only error shape
    passed on, with every ErrorCode a listed v3.1.11 value or moved into obgw's namespace (`errors.namespaced`);
    None for anything else."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or first_problem(document, "OBErrorResponse1", "aisp") is not None:
        return None
    errors = document["Errors"]
    if all(namespaced(error["ErrorCode"]) == error["ErrorCode"] for error in errors):
        return body
    document["Errors"] = [error | {"ErrorCode": namespaced(error["ErrorCode"])} for error in errors]
    return orjson.dumps(document)


class Forward(Stage):
    """Sends the call to the route's service and answers the call with what it said (`call.upstream`)."""

    calls_bank = True  # a fault here may come after the bank acted: the outcome is unknown (stage contract)

    def __init__(self, policy: PolicySet, clock: Clock = time.monotonic) -> None:
        self._policy = policy
        self._pools: dict[str, UpstreamPool] = {}
        self._guards = {name: BackendGuard(service, clock) for name, service in policy.services.items()}
        self._metrics = {name: ServiceMetrics(name) for name in policy.services}

    async def start(self) -> None:
        self._pools = {name: service_pool(service) for name, service in self._policy.services.items()}

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self._pools.values()))
        self._pools.clear()

    @staticmethod
    def _failed(admission: Admission, guard: BackendGuard, metrics: ServiceMetrics, started: float,
                outcome: str) -> None:
        admission.record(ok=False)
        metrics.failed(time.perf_counter() - started, outcome)
        metrics.breaker_is(guard.breaker.state.value)

    async def on_request(self, call: Call) -> Flow:
        route = call.routed
        service = route.service
        target = route.upstream_target(call.path_params)
        query = _scoped_query(call)
        if query:
            target += "?" + query
        headers = {k: v for k, v in call.headers if k in REQUEST_HEADERS}
        if b"x-idempotency-key" in headers:
            # Keys are the TPP's own: the bank, seeing every TPP as one caller, gets them scoped per TPP.
            scoped = f"{call.client_id}\n".encode() + headers[b"x-idempotency-key"]
            headers[b"x-idempotency-key"] = hashlib.sha256(scoped).hexdigest()[:40].encode()
        headers[b"x-fapi-interaction-id"] = call.interaction_id.encode()
        if call.trace is not None:  # W3C Trace Context: the trace goes on, with this call's span as the parent
            headers[b"traceparent"] = call.trace.traceparent.encode()
        if call.customer_id:  # the bank learns whose data from the consent, never from anything the TPP sent
            headers[CUSTOMER_HEADER] = call.customer_id.encode()
        if call.consent_id:  # ... under which consent (a payment read answers for the consent's own payments only)
            headers[CONSENT_HEADER] = call.consent_id.encode()
        if call.entitlement is not None:
            if route.tells_debtor_account:  # ... the account the consent names
                headers[DEBTOR_ACCOUNT_HEADER] = sorted(call.entitlement.accounts)[0].encode()
            if route.instructed_amount:  # ... and the amount the customer authorised
                headers[AMOUNT_HEADER] = call.entitlement.instructed_amount.encode()
        guard, metrics = self._guards[service.name], self._metrics[service.name]
        try:
            admitted = guard.admit()  # may refuse (503) before any I/O
        except Refusal:
            metrics.failed(0.0, "shed")
            metrics.breaker_is(guard.breaker.state.value)
            raise
        with admitted as admission:
            started = time.perf_counter()
            try:
                status, answer_headers, body = await self._pools[service.name].request(
                    call.method, target, list(headers.items()), call.body, route.timeout_ms / 1000)
            except TimeoutError:
                self._failed(admission, guard, metrics, started, "timeout")
                raise Refusal("backend.timeout") from None
            except Unavailable:
                self._failed(admission, guard, metrics, started, "unavailable")
                raise Refusal("backend.unavailable") from None   # no connection: nothing was sent
            except Unanswered:
                self._failed(admission, guard, metrics, started, "unanswered")
                raise Refusal("backend.unanswered") from None    # sent, but no whole answer: the outcome is unknown
            admission.record(ok=status < 500)  # a 4xx is the back-end answering
            metrics.answered(time.perf_counter() - started, status)
            metrics.breaker_is(guard.breaker.state.value)
        if status >= 500:
            raise Refusal("backend.error", f"The bank's service answered {status}.")
        if status >= 400:
            error = _ob_error(body)
            if error is None:
                # An HTML error page, a stack trace: never the TPP's to read. The status is the bank's, the body ours.
                raise Refusal("backend.rejected", status=status)
            body = error
        call.upstream = Upstream(status=status, headers=[(k, v) for k, v in answer_headers if k in RESPONSE_HEADERS],
                                 body=body)
        return STOP
