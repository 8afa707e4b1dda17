"""Token Introspection (RFC 7662): a client may ask about its own tokens; anything else is `active: false`."""
from __future__ import annotations

from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from gateway.oauth.models import AUTH_METHODS, AccessToken
from gateway.oauth.token_lookup import ClientTokenLookup
from gateway.oauth.tokens import INTENT_CLAIM, token_type


class Introspection(ClientTokenLookup, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = list(AUTH_METHODS)

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
