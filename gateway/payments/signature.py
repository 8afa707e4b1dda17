"""VerifySignature: where policy requires it (payment POSTs), the body carries the TPP's detached JWS
(`x-jws-signature`, UK OB v3.1.4+ message signing), verified with a key of its registered JWKS (`payments.jws`).
Missing: 400 UK.OBIE.Signature.Missing; anything wrong with it: UK.OBIE.Signature.Invalid (or .Malformed)."""
from __future__ import annotations

from gateway.call import CONTINUE, Call, Flow, Stage
from gateway.errors import Refusal
from gateway.payments.jws import SignatureProblem, verify_detached

SIGNATURE_HEADER = b"x-jws-signature"


class VerifySignature(Stage):
    def __init__(self, clients, *, always: bool = False) -> None:
        self._clients = clients  # the TPP registry, for the client's registered JWKS (read live: `aget`)
        self._always = always    # the payment-consent POST; resource routes say so in their policy

    async def on_request(self, call: Call) -> Flow:
        required = ((self._always and call.method == "POST")
                    or (call.route is not None and call.route.signature_required))
        if not required:
            return CONTINUE
        values = [v for k, v in call.headers if k == SIGNATURE_HEADER]
        value = values[0].decode("latin-1") if len(values) == 1 else None
        document = await self._clients.aget(call.client_id)
        try:
            verify_detached(value, call.body, (document or {}).get("jwks") or {"keys": []}, call.tpp)
        except SignatureProblem as problem:
            raise Refusal(problem.reason, str(problem), path=problem.claim or "x-jws-signature") from None
        return CONTINUE
