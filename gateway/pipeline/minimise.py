"""Minimise: what leaves the gateway is what the consent allows, cut from the bank's answer by `policies/fields.yaml`.

Runs on the response (so after Forward, in the mirror order of the request stages). Only successful answers are cut;
the cutting itself is `policy.fields.minimise`, the evaluator `policy explain` uses too. A file (a statement's PDF)
is passed unmodified, and only in a media type its rules name. Fail closed: an answer that cannot be parsed or cut,
or a file of another type, is never sent, not even in part (502, no body).

Each record that leaves is named in the audit record by a keyed fingerprint of its identity (fields.yaml `trace`;
audit/fingerprints.py), computed here from the answer as cut, so `obgw audit trace` finds who received a record.

The bank's paging links (Links.Next...) name the bank's URLs: each becomes the gateway's URL of the route it leads
to, so following it goes through every stage again; a link to anywhere the gateway serves no GET route is dropped.
"""
from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode

import orjson

from gateway.audit.fingerprints import delivered
from gateway.call import Call, Stage
from gateway.errors import Refusal
from gateway.policy import PolicySet
from gateway.policy.fields import Entitlement, MinimiseError, minimise
from gateway.policy.router import RouteMatch

_BODY_HEADERS = frozenset({b"x-jws-signature", b"etag", b"last-modified", b"cache-control"})
_NO_STORE = (b"cache-control", b"no-store")


class Minimise(Stage):
    def __init__(self, issuer: str, policy: PolicySet, fingerprint_key: bytes) -> None:
        self._issuer = issuer  # Links name the gateway's URLs, never the back-end's
        self._policy = policy
        self._fingerprint_key = fingerprint_key

    async def on_response(self, call: Call) -> None:
        fields, upstream = call.routed.fields, call.upstream
        if fields is None or upstream is None or not 200 <= upstream.status < 300:
            return
        if fields.media_types is not None:
            media_type = next((v for k, v in upstream.headers if k == b"content-type"), b"").split(b";")[0]
            if media_type.strip().lower().decode("latin-1") not in fields.media_types:
                raise Refusal("minimise.failed")
            # Consented data is never kept by a shared cache.
            upstream.headers = [(k, v) for k, v in upstream.headers if k != b"cache-control"] + [_NO_STORE]
            return
        query = "?" + call.query.decode("latin-1") if call.query else ""
        consented = call.entitled
        entitlement = Entitlement(consented.permissions, consented.accounts, consented.window,
                                  f"{self._issuer}{call.path}{query}", self.public_link)
        try:
            document = minimise(orjson.loads(upstream.body), fields, entitlement)
        except (orjson.JSONDecodeError, MinimiseError):
            raise Refusal("minimise.failed") from None
        upstream.body = orjson.dumps(document)
        if fields.trace is not None:
            call.delivered = delivered(self._fingerprint_key, document, fields.trace)
        # What described the bank's bytes describes them no more (a signature, an ETag).
        upstream.headers = [(k, v) for k, v in upstream.headers if k not in _BODY_HEADERS] + [_NO_STORE]

    def public_link(self, link: object) -> str | None:
        """The gateway's URL for a back-end URL of one of its GET routes (same service, same path), without the
        query parameter the gateway itself fills in (the selected accounts); None for any other URL."""
        if not isinstance(link, str):
            return None
        for service in self._policy.services.values():
            if link.startswith(service.url + "/"):
                break
        else:
            return None
        path, _, query = link[len(service.url):].partition("?")
        found = self._policy.match("GET", unquote(path))
        if not isinstance(found, RouteMatch) or found.route.service is not service \
                or found.route.upstream_path != found.route.path:
            return None
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
                if k != found.route.selected_accounts_param]
        return f"{self._issuer}{path}" + (f"?{urlencode(kept)}" if kept else "")
