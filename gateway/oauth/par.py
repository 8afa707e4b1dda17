"""Pushed Authorization Requests (RFC 9126).

The client pushes its authorization request to the back channel, authenticated and over mutual TLS; it gets a
single-use `request_uri` that lives at most 90 s (§2.2) and is the only thing the front channel carries.
"""
from __future__ import annotations

import secrets

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.endpoint import Endpoint

from gateway.oauth.models import AUTH_METHODS

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"


class PushedAuthorizationEndpoint(Endpoint):
    ENDPOINT_NAME = "pushed_authorization"

    def create_endpoint_response(self, request):
        server = self.server
        client = server.authenticate_client(request, list(AUTH_METHODS), self.ENDPOINT_NAME)
        request.client = client
        data = request.payload.data
        # RFC 9126 §2.1: request_uri must not be pushed; request objects (RFC 9101) are not offered here.
        if "request_uri" in data:
            raise InvalidRequestError("request_uri may not be pushed.")
        if "request" in data:
            raise InvalidRequestError("Request objects are not supported; push the parameters themselves.")
        # §2.1: client_id is required as in any authorization request, and must be the authenticated client.
        if data.get("client_id") != client.client_id:
            raise InvalidRequestError("client_id must be given and be the authenticated client.")
        request.pushed = True
        try:
            grant = server.get_authorization_grant(request)
            grant.validate_authorization_request()
        except OAuth2Error as error:
            # §2.3: errors are answered to the client as JSON, never by redirecting the user agent.
            error.redirect_uri = None
            error.state = None
            raise
        request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
        server.store.push_request(request_uri, dict(data), server.settings.par_seconds)
        return 201, {"request_uri": request_uri, "expires_in": server.settings.par_seconds}, [
            ("Content-Type", "application/json"), ("Cache-Control", "no-store")]
