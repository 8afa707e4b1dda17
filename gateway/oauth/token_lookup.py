"""What revocation (RFC 7009) and introspection (RFC 7662) share: finding a token for the client asking.

Refresh tokens are stored under their client, so the lookup needs the authenticated client, which Authlib's
`query_token(token, hint)` is not given; both endpoints look tokens up here instead.
"""
from __future__ import annotations


class ClientTokenLookup:
    def query_token(self, token_string, token_type_hint):
        raise NotImplementedError("tokens are looked up with the client: see find_for")

    def find_for(self, request, client):
        """The token named in the request (an access token of any client, or this client's refresh token)."""
        self.check_params(request, client)
        return self.server.find_token(request.form["token"], request.form.get("token_type_hint"), client)
