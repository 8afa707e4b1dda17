"""Minimise: what leaves the gateway is what the consent allows, cut from the bank's answer by `policies/fields.yaml`.

Runs on the response (so after Forward, in the mirror order of the request stages). Only successful answers of
routes with field rules are cut; the cutting itself is `policy.fields.minimise`, the evaluator `policy explain`
uses too. Fail closed: an answer that cannot be parsed or cut is never sent, not even in part (502, no body).
"""
from __future__ import annotations

import orjson

from gateway.errors import Refusal
from gateway.pipeline.call import Call
from gateway.policy.fields import Grant, MinimiseError, minimise


class Minimise:
    def __init__(self, issuer: str) -> None:
        self._issuer = issuer  # Links.Self names the gateway's URL, never the back-end's

    async def on_response(self, call: Call) -> None:
        fields, upstream = call.route.fields, call.upstream
        if fields is None or upstream is None or not 200 <= upstream.status < 300:
            return
        query = "?" + call.query.decode("latin-1") if call.query else ""
        grant = call.grant
        grant = Grant(grant.permissions, grant.accounts, grant.window, f"{self._issuer}{call.path}{query}")
        try:
            body = orjson.dumps(minimise(orjson.loads(upstream.body), fields, grant))
        except (orjson.JSONDecodeError, MinimiseError):
            raise Refusal("minimise.failed") from None
        upstream.body = body
