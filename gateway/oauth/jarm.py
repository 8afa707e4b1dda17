"""JARM (JWT Secured Authorization Response Mode, OpenID FAPI; FAPI 2.0 Message Signing §5.4): with
`response_mode=jwt` (or `query.jwt`) the authorization response - the code and state, or the error - reaches the
client as one JWT signed by the gateway, `response`, in the redirect URI's query, so the client can tell the
response came from this server, for it, and recently (`iss`, `aud`, `exp`).

The JWT is signed with the gateway's current token-signing key (ES256, its `kid` in the JWKS at `jwks_uri`).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode

MODES = ("query", "jwt", "query.jwt")   # response_mode values taken; the last two are JARM's
LIFETIME = 600                           # seconds: "short-lived", as the JARM specification recommends (10 minutes)
TYP = "oauth-authz-resp+jwt"             # the media type FAPI 2.0 Message Signing names for the response JWT


def wants_jwt(params: Mapping[str, str]) -> bool:
    return params.get("response_mode") in ("jwt", "query.jwt")


def jwt_location(location: str, client_id: str, issuer: str, sign: Callable[[dict], str]) -> str:
    """The redirect `location` (redirect_uri?code=...&state=...&iss=... or ?error=...) with its parameters moved
    into one signed `response` JWT: iss the gateway, aud the client, exp LIFETIME from now."""
    target, _, query = location.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    claims = {**params, "iss": issuer, "aud": client_id, "exp": int(time.time()) + LIFETIME}
    return f"{target}?{urlencode({'response': sign(claims)})}"
