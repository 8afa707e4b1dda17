"""The three grants FAPI needs, as Authlib grants: authorization code (PAR only, PKCE S256, consent_id),
client credentials (consent creation), refresh token (same client and consent). No implicit, hybrid or password
grant is registered, so none can be used.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Collection

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    grants,
)
from authlib.oauth2.rfc7636 import CodeChallenge

from gateway.oauth.models import AUTH_METHODS, RESOURCE_SCOPES, AuthorizationCode, Grantee, RefreshToken


class CertificateBoundTokens:
    """Every token is bound to its sender: to the certificate of the request that obtains it (RFC 8705 §3), or, for
    a client registered for DPoP, to the key of the request's DPoP proof (RFC 9449 §5).

    The proof is checked as soon as the client is authenticated, before the grant uses anything up (a code is single
    use: a proof refused for want of the server's nonce must leave it for the retry). Authlib's token-generator hook
    is not given the request, so the grants hand the issuer the binding here.
    """

    def authenticate_token_endpoint_client(self):
        client = super().authenticate_token_endpoint_client()
        self.request.cnf = self.server.sender_binding(self.request, client)
        return client

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=True):
        return self.server.tokens.issue(self.request.client, self.request.cnf, scope, user, include_refresh_token)


class S256CodeChallenge(CodeChallenge):
    """PKCE (RFC 7636) as FAPI 1 Advanced §5.2.2-18 requires: always, and only with S256."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("code_challenge is required (PKCE with S256).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256; plain is not allowed.")
        super().validate_code_challenge(grant, redirect_uri)


class ClientCredentials(CertificateBoundTokens, grants.ClientCredentialsGrant):
    """UK OB: a client-credentials token (scope `accounts` or `payments`) is what creates a consent."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_token_request(self):
        super().validate_token_request()
        scope = self.request.payload.scope
        wanted = set((scope or "").split())
        if not wanted or not wanted <= set(RESOURCE_SCOPES) or self.client.get_allowed_scope(scope) is None:
            raise InvalidScopeError(f"Ask for scope {', '.join(RESOURCE_SCOPES)}, as the client's roles allow.")


class PushedAuthorizationCode(CertificateBoundTokens, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_authorization_request(self):
        request = self.request
        data = request.payload.data
        # RFC 9126 §4 with require_pushed_authorization_requests: parameters only ever come from a pushed request.
        if not getattr(request, "pushed", False):
            raise InvalidRequestError("Authorization requests must be pushed (PAR, RFC 9126).")
        # FAPI 1 Advanced §5.2.2-9: the redirect_uri is required, and matched exactly.
        if not data.get("redirect_uri"):
            raise InvalidRequestError("redirect_uri is required.")
        try:
            redirect_uri = super().validate_authorization_request()
        except ValueError:  # Authlib's own message quoted a redirect_uri no error_description may carry
            raise InvalidRequestError("redirect_uri is not one registered for the client.") from None
        # OIDC Core §3.1.2.1 and FAPI 1 Advanced §5.2.2.2: with openid, a nonce protects the id_token.
        if "openid" in request.scope.split() and not data.get("nonce"):
            raise InvalidRequestError("nonce is required with scope openid.", redirect_uri=redirect_uri)
        self.server.consent_for_request(request, redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code, request):
        data, grantee = request.payload.data, request.user
        self.server.store.save_code(code, {
            "client_id": request.client.client_id, "redirect_uri": data["redirect_uri"], "scope": request.scope,
            "code_challenge": data["code_challenge"], "code_challenge_method": data["code_challenge_method"],
            "nonce": data.get("nonce"), "consent_id": grantee.consent_id,
            "subject": grantee.subject, "grant_id": grantee.grant_id, "auth_time": grantee.auth_time,
            "sca": grantee.sca,
        }, self.server.settings.auth_code_seconds)

    def query_authorization_code(self, code, client):
        record, earlier = self.server.store.take_code(code, client.client_id)
        if earlier and earlier["client_id"] == client.client_id:
            # RFC 6749 §4.1.2: a code used twice revokes what its first use produced.
            self.server.store.revoke_grant(client.client_id, earlier["grant_id"],
                                           self.server.settings.refresh_token_seconds)
            return None
        return AuthorizationCode(record) if record is not None else None

    def delete_authorization_code(self, authorization_code):
        """Nothing to do: `query_authorization_code` took the code out of the store already (single use)."""

    def authenticate_user(self, authorization_code):
        grantee = authorization_code.grantee
        if not self.server.consent_usable(self.request.client.client_id, grantee.consent_id, grantee.grant_id):
            raise InvalidGrantError("The consent is no longer authorised.")
        return grantee


class RefreshTokenGrant(CertificateBoundTokens, grants.RefreshTokenGrant):
    """No rotation (FAPI 1 Advanced §5.2.2-15 discourages it); the token stays bound to its client and consent.

    RFC 8705 §4: a confidential client's refresh token is bound to the client (its authentication, with any of its
    registered certificates), not to one certificate, so a yearly certificate renewal keeps the 90-day consents
    working; the new access token is bound to the certificate presented at the refresh.
    """

    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = False

    def authenticate_refresh_token(self, refresh_token):
        client, server = self.request.client, self.server
        record = server.store.refresh_token(client.client_id, refresh_token)  # keyed by client: others' never match
        if record is None:
            raise InvalidGrantError("Unknown or expired refresh token.")
        if server.store.is_revoked(client.client_id, None, record["grant_id"]):
            raise InvalidGrantError("The refresh token has been revoked.")
        if not server.consent_usable(client.client_id, record["consent_id"], record["grant_id"]):
            raise InvalidGrantError("The consent is no longer authorised.")
        return RefreshToken(refresh_token, record)

    def authenticate_user(self, refresh_token):
        return refresh_token.grantee

    def revoke_old_credential(self, refresh_token):
        """Nothing to do: refresh tokens are not rotated."""


# The factors a customer authentication may have passed, by their RFC 8176 `amr` names: the password (knowledge) and
# the authenticator's one-time code (possession). Both together are strong customer authentication (PSD2 RTS Art. 4).
PASSWORD, ONE_TIME_CODE = "pwd", "otp"
STRONG_FACTORS = frozenset({PASSWORD, ONE_TIME_CODE})


def new_grantee(subject: str, consent_id: str, nonce: str | None, *, factors: Collection[str],
                authenticated_at: int | None = None) -> Grantee:
    """The grantee of one authorisation. `factors`: those the customer passed in this authorisation; `acr` is sca
    (Grantee.sca) only if they include both, never by assumption. `authenticated_at`: when the last of them passed
    (the id_token's auth_time; now if not given)."""
    return Grantee(subject=subject, consent_id=consent_id, grant_id=secrets.token_urlsafe(12),
                   auth_time=authenticated_at if authenticated_at is not None else int(time.time()), nonce=nonce,
                   sca=STRONG_FACTORS <= set(factors))
