"""Token Introspection (RFC 7662): a client may ask about its own tokens; anything else is `active: false`. Asked
with `Accept: application/token-introspection+jwt` (RFC 9701), the answer is a JWT the gateway signs (`iss` the
gateway, `aud` the client, `iat`, the answer as `token_introspection`), so the client can hold the server to it."""
from __future__ import annotations

import time

from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from gateway.oauth.models import AUTH_METHODS, AccessToken
from gateway.oauth.signing_keys import signer
from gateway.oauth.token_lookup import ClientTokenLookup
from gateway.oauth.tokens import INTENT_CLAIM, token_type

JWT_MEDIA_TYPE = "application/token-introspection+jwt"


class Introspection(ClientTokenLookup, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = list(AUTH_METHODS)

    def create_endpoint_response(self, request):
        status, body, headers = super().create_endpoint_response(request)
        if JWT_MEDIA_TYPE not in request.headers.get("accept", ""):
            return status, body, headers
        claims = {"iss": self.server.issuer, "aud": request.client.client_id, "iat": int(time.time()),
                  "token_introspection": body}
        signed = signer(self.server.keys.ring, JWT_MEDIA_TYPE.split("/")[1])(claims)
        return status, signed, [("Content-Type", JWT_MEDIA_TYPE), ("Cache-Control", "no-store")]

    def authenticate_token(self, request, client):
        token = self.find_for(request, client)
        return token if token is not None and self.check_permission(token, client, request) else None

    def check_permission(self, token, client, request):
        return token.check_client(client)

    def introspect_token(self, token):
        if isinstance(token, AccessToken):
            c = token.claims
            payload = {k: c[k] for k in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "cnf")}
            payload["token_type"] = token_type(c["cnf"])
            if INTENT_CLAIM in c:
                payload[INTENT_CLAIM] = c[INTENT_CLAIM]
            return payload
        r = token.record
        return {"scope": r["scope"], "client_id": r["client_id"], "sub": r["subject"], "exp": r["exp"],
                "token_type": "refresh_token", INTENT_CLAIM: r["consent_id"],
                # a refresh token issued before DPoP kept the certificate's thumbprint alone
                "cnf": r["cnf"] if isinstance(r["cnf"], dict) else {"x5t#S256": r["cnf"]}}
