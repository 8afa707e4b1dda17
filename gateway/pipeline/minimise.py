"""Minimise: what leaves the gateway is what the consent allows, cut from the bank's answer by `policies/fields.yaml`.

Runs on the response (so after Forward, in the mirror order of the request stages). Only successful answers of
routes with field rules are cut; the cutting itself is `policy.fields.minimise`, the evaluator `policy explain`
uses too. Fail closed: an answer that cannot be parsed or cut is never sent, not even in part (502, no body).
"""
from __future__ import annotations

import orjson

from gateway.call import Call, Stage
from gateway.errors import Refusal
from gateway.policy.fields import Entitlement, MinimiseError, minimise

_BODY_HEADERS = frozenset({b"x-jws-signature", b"etag", b"last-modified", b"cache-control"})


class Minimise(Stage):
    def __init__(self, issuer: str) -> None:
        self._issuer = issuer  # Links.Self names the gateway's URL, never the back-end's

    async def on_response(self, call: Call) -> None:
        fields, upstream = call.route.fields, call.upstream
        if fields is None or upstream is None or not 200 <= upstream.status < 300:
            return
        query = "?" + call.query.decode("latin-1") if call.query else ""
        consented = call.entitlement
        entitlement = Entitlement(consented.permissions, consented.accounts, consented.window,
                                  f"{self._issuer}{call.path}{query}")
        try:
            body = orjson.dumps(minimise(orjson.loads(upstream.body), fields, entitlement))
        except (orjson.JSONDecodeError, MinimiseError):
            raise Refusal("minimise.failed") from None
        upstream.body = body
        # What described the bank's bytes describes them no more (a signature, an ETag); consented data is never
        # kept by a shared cache.
        upstream.headers = [(k, v) for k, v in upstream.headers if k not in _BODY_HEADERS] + [
            (b"cache-control", b"no-store")]
