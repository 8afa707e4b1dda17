"""SignAnswer: the gateway's own `x-jws-signature` on every successful payment and payment-consent answer (UK OB
Read/Write API Profile, "Message Signing": the ASPSP signs its responses to the payment APIs), a detached JWS over
the body as sent, with the gateway's current token-signing key (its `kid` is in the JWKS at `jwks_uri`) and the
gateway's issuer URL as `http://openbanking.org.uk/iss`. A TPP verifies it as the gateway verifies theirs.

Runs on the response after Minimise (the body is final) and before Idempotency keeps the answer, so a replay carries
the same signature. The key is read in a thread: the ring may be re-read from Redis (oauth/signing_keys.py). When
Redis cannot be read the last key read signs: an answer about money the bank has moved is never turned into an error
for want of the key (if no key was ever read, the answer goes unsigned and the fault is logged)."""
from __future__ import annotations

import logging
from collections.abc import Callable

from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from gateway.call import Call, Stage
from gateway.oauth.signing_keys import KeyRing
from gateway.payments.jws import sign_with

SIGNATURE_HEADER = b"x-jws-signature"
log = logging.getLogger("obgw")


class SignAnswer(Stage):
    """`scope`: sign only the answers of routes with this scope (the resource pipeline: payments); None: every
    answer of the pipeline (a payment-consent API)."""

    def __init__(self, ring: Callable[[], KeyRing], issuer: str, scope: str | None = "payments") -> None:
        self._ring, self._issuer, self._scope = ring, issuer, scope
        self._last: KeyRing | None = None

    async def on_response(self, call: Call) -> None:
        upstream = call.upstream
        if upstream is None or not 200 <= upstream.status < 300 or not upstream.body:
            return
        if self._scope is not None and call.routed.scope != self._scope:
            return
        try:
            self._last = await run_in_threadpool(self._ring)
        except (RedisError, OSError):
            log.warning("signing keys unreadable: the answer is signed with the last key read, if any")
        key = self._last.signing if self._last is not None else None
        if key is None or key.private is None:
            return
        signature = sign_with(upstream.body, key.private, key.kid, self._issuer)
        upstream.headers = [(k, v) for k, v in upstream.headers if k != SIGNATURE_HEADER] + [
            (SIGNATURE_HEADER, signature.encode("ascii"))]
