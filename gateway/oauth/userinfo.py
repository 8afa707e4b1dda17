"""The UserInfo endpoint (OpenID Connect Core §5.3): what the consent's token may say about the customer.

GET or POST with the access token as a Bearer token (RFC 6750 §2.1), over mutual TLS with the certificate the token
is bound to (RFC 8705 §3), of a consent still usable and with scope `openid`. The answer names the customer only by
the token's pseudonymous `sub` (never the bank's customer id) and the consent it was granted for
(`openbanking_intent_id`, as UK OB clients read it): the consents obgw holds allow no identity claims beyond these.
Errors are RFC 6750 §3: 401 with `WWW-Authenticate: Bearer error=...` (invalid_token), 403 insufficient_scope.
"""
from __future__ import annotations

from dataclasses import dataclass

from gateway.call import ClientCertificate
from gateway.oauth.server import GatewayAuthorizationServer, OAuthResponse
from gateway.oauth.tokens import INTENT_CLAIM

_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Pragma", "no-cache")]


@dataclass(frozen=True)
class UserInfoRequest:
    authorization: str
    certificate: ClientCertificate | None


async def adapt(scope, receive, issuer: str, certificate: ClientCertificate | None) -> UserInfoRequest:
    """Only the Authorization header matters: a token in a form body or query is not accepted (FAPI 1 Advanced
    §6.2.2-1 allows the header alone)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return UserInfoRequest(headers.get("authorization", ""), certificate)


def _refused(status: int, error: str, description: str) -> OAuthResponse:
    challenge = f'Bearer error="{error}", error_description="{description}"'
    return OAuthResponse(status, {"error": error, "error_description": description},
                         [*_JSON, ("WWW-Authenticate", challenge)])


class UserInfo:
    def __init__(self, server: GatewayAuthorizationServer) -> None:
        self._server = server

    def answer(self, request: UserInfoRequest) -> OAuthResponse:
        scheme, _, value = request.authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            return _refused(401, "invalid_token", "A Bearer access token is required.")
        token = self._server.access_token(value.strip())
        if token is None or token.revoked or INTENT_CLAIM not in token.claims:
            return _refused(401, "invalid_token", "The access token is not a live token of an authorised consent.")
        if request.certificate is None or token.claims["cnf"]["x5t#S256"] != request.certificate.thumbprint:
            return _refused(401, "invalid_token", "The access token is bound to another client certificate.")
        if "openid" not in token.get_scope().split():
            return _refused(403, "insufficient_scope", "The access token was not granted scope openid.")
        return OAuthResponse(200, {"sub": token.claims["sub"], INTENT_CLAIM: token.claims[INTENT_CLAIM]}, list(_JSON))
