"""Idempotency: `x-idempotency-key` on payment POSTs (UK OB Read/Write API, "Idempotency"): scoped per TPP, kept
24 h; a retry with the same key and body gets the first answer and has no second effect; the same key with another
body is refused. The claim is atomic across workers (`store.idempotency`), so two identical requests arriving at
once on two workers make one payment: the second waits for the first's answer and gets it.

An answer whose outcome is unknown (the bank timed out, or failed) keeps the key claimed: a retry must not pay
again, so it is told the key is still in use; the payment's own status says what happened.
"""
from __future__ import annotations

import hashlib

from gateway.call import CONTINUE, STOP, Call, Flow, Stage, Upstream, required
from gateway.errors import Refusal
from gateway.payments.settle import now_or_later
from gateway.ratelimit import conclude
from gateway.store.idempotency import IdempotencyStore, StoredResponse

KEY_HEADER = b"x-idempotency-key"
MAX_KEY_LENGTH = 40                 # UK OB: "max length 40"
# The bank may have acted: it timed out, answered 5xx, or dropped the connection after the request was sent.
UNKNOWN_OUTCOME = frozenset({"backend.timeout", "backend.error", "backend.unanswered"})


class Idempotency(Stage):
    def __init__(self, store: IdempotencyStore, *, always: bool = False, wait_seconds: float = 10.0,
                 admission=None, rate=None) -> None:
        self._store = store
        self._always = always      # the consent API's POST; resource routes say so in their policy
        self._wait = wait_seconds
        # A replay skips the stages after this one; what must still hold for it (the token not revoked, the
        # client enabled, the rate limit) is checked with these, in one round trip.
        self._admission, self._rate = admission, rate

    def _applies(self, call: Call) -> bool:
        return call.method == "POST" and (self._always or (call.route is not None and call.route.idempotency_required))

    async def on_request(self, call: Call) -> Flow:
        if not self._applies(call):
            return CONTINUE
        values = [v for k, v in call.headers if k == KEY_HEADER]
        if not values:
            raise Refusal("idempotency.missing", path="x-idempotency-key")
        key = values[0].decode("latin-1").strip()
        if len(values) > 1 or not key or len(key) > MAX_KEY_LENGTH:
            raise Refusal("idempotency.invalid", path="x-idempotency-key")
        # The same request: method, path, consent and body (a replay under another consent is another request).
        digest = hashlib.sha256(f"{call.method} {call.path} {call.consent_id or ''}\n".encode() + call.body).hexdigest()
        claim = await self._store.claim(call.tpp, key, digest)
        if claim.state == "pending":
            claim = await self._store.wait(call.tpp, key, digest, self._wait)
        if claim.state == "mismatch":
            raise Refusal("idempotency.mismatch", path="x-idempotency-key")
        if claim.state == "replay":
            if self._admission is not None:
                verdict = await self._admission.admit_client(call.tpp, required(call.claims, "claims")["jti"],
                                                             self._rate(call.routed.id),
                                                             kid=required(call.key_id, "key_id"))
                conclude(call, verdict)
            response = required(claim.response, "claim.response")
            call.upstream = Upstream(response.status, list(response.headers), response.body)
            return STOP  # answered: the stages after this one (Admit, the bank) are not asked again
        if claim.state != "new":
            raise Refusal("idempotency.pending", headers={"Retry-After": "1"}, path="x-idempotency-key")
        call.idempotency = (key, claim)
        return CONTINUE

    async def on_response(self, call: Call) -> None:
        if call.idempotency is not None:
            key, claim = call.idempotency
            upstream, client_id = call.answer, call.tpp
            answer = StoredResponse(upstream.status, tuple(upstream.headers), upstream.body)
            # Until the key holds the answer, a retry with it waits (409 idempotency.pending), never pays again.
            await now_or_later(f"idempotency key of {client_id}: answer kept",
                               lambda: self._store.finish(client_id, key, claim, answer))

    async def on_abort(self, call: Call, refusal: Refusal) -> None:
        if call.idempotency is not None and refusal.reason not in UNKNOWN_OUTCOME:
            key, claim = call.idempotency
            await self._store.release(call.tpp, key, claim)  # refused before any effect: a retry may run
