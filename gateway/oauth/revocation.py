"""Token Revocation (RFC 7009) for access and refresh tokens.

A revoked access token is listed by its `jti` until it would have expired; a revoked refresh token is deleted and
its whole grant listed, so the access tokens obtained with it stop too (§2.1). The Admit script reads both lists on
every resource call, so a revocation holds from the very next call, on every worker.
"""
from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidGrantError
from authlib.oauth2.rfc7009 import RevocationEndpoint

from gateway.oauth.models import AUTH_METHODS, AccessToken
from gateway.oauth.token_lookup import ClientTokenLookup


class Revocation(ClientTokenLookup, RevocationEndpoint):
    CLIENT_AUTH_METHODS = list(AUTH_METHODS)

    def authenticate_token(self, request, client):
        token = self.find_for(request, client)
        # §2.1: a token of another client is refused; an unknown or invalid token is answered 200 (§2.2).
        if token is not None and not token.check_client(client):
            raise InvalidGrantError("The token was not issued to this client.")
        return token

    def revoke_token(self, token, request):
        store, settings = self.server.store, self.server.settings
        if isinstance(token, AccessToken):
            store.revoke_token(token.client_id, token.claims["jti"], token.get_expires_in())
        else:
            store.delete_refresh_token(token.client_id, token.token)
            store.revoke_grant(token.client_id, token.record["grant_id"], settings.refresh_token_seconds)
