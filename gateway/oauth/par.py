"""Pushed Authorization Requests (RFC 9126).

The client pushes its authorization request to the back channel, authenticated and over mutual TLS, as parameters or
as a signed request object (RFC 9101, `request`: oauth/request_objects.py); it gets a single-use `request_uri` that
lives at most 90 s (§2.2) and is the only thing the front channel carries.

What one TPP can make the gateway hold is bounded (§2.3 names both answers): each push counts against the TPP's
rate limit (the same per-TPP buckets as its resource calls, policies/limits.yaml; over it 429 with Retry-After), a
body is at most MAX_BODY_BYTES (413) and each parameter at most MAX_PARAMETER_CHARS (400 invalid_request).
"""
from __future__ import annotations

import secrets

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.endpoint import Endpoint

from gateway.oauth import jarm
from gateway.oauth.models import AUTH_METHODS
from gateway.oauth.request_objects import authorization_parameters, with_intent
from gateway.oauth.requests import FormPayload

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
ROUTE_ID = "oauth.par"               # its rate-limit group is the TPP's default one (no route group names it)
MAX_BODY_BYTES = 16 * 1024           # an authorization request with PKCE, state and nonce is well under 1 KiB
MAX_PARAMETER_CHARS = 4 * 1024
CLIENT_AUTHENTICATION = ("client_assertion", "client_assertion_type")  # authenticates the push; not kept with it


class PushedAuthorizationEndpoint(Endpoint):
    ENDPOINT_NAME = "pushed_authorization"

    def create_endpoint_response(self, request):
        server = self.server
        client = server.authenticate_client(request, list(AUTH_METHODS), self.ENDPOINT_NAME)
        request.client = client
        request.admit(client.client_id)  # every authenticated push counts, refused or not (§2.3: 429)
        data = request.payload.data
        if any(len(name) > MAX_PARAMETER_CHARS or len(value) > MAX_PARAMETER_CHARS
               for name, value in data.items() if name != "request"):  # the body's limit bounds a request object
            raise InvalidRequestError(f"A parameter is longer than {MAX_PARAMETER_CHARS} characters.")
        # RFC 9126 §2.1: request_uri must not be pushed.
        if "request_uri" in data:
            raise InvalidRequestError("request_uri may not be pushed.")
        # §2.1: client_id is required as in any authorization request, and must be the authenticated client.
        if data.get("client_id") != client.client_id:
            raise InvalidRequestError("client_id must be given and be the authenticated client.")
        if "request" in data:  # RFC 9101 §6.3: then the request is the object's parameters alone
            data = {**authorization_parameters(data["request"], client, server.issuer), "client_id": client.client_id}
        request.payload = FormPayload(with_intent(data))
        data = request.payload.data
        if data.get("response_mode", "query") not in jarm.MODES:
            raise InvalidRequestError(f"response_mode must be one of {', '.join(jarm.MODES)}.")
        _openid_parameters(data)
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
        pushed = {name: value for name, value in data.items() if name not in CLIENT_AUTHENTICATION}
        server.store.push_request(request_uri, pushed, server.settings.par_seconds)
        return 201, {"request_uri": request_uri, "expires_in": server.settings.par_seconds}, [
            ("Content-Type", "application/json"), ("Cache-Control", "no-store")]


PROMPTS = frozenset({"none", "login", "consent", "select_account"})  # OIDC Core §3.1.2.1


def _openid_parameters(data: dict[str, str]) -> None:
    """OIDC Core §3.1.2.1's prompt and max_age, well formed. Every authorisation here logs the customer in afresh
    with both factors, so `login`, any `max_age` and `acr_values` asking for `urn:openbanking:psd2:sca` are met as
    asked; `none` is answered login_required at the authorization endpoint (there is never a session to reuse)."""
    prompt = data.get("prompt")
    if prompt is not None:
        values = set(prompt.split())
        if not values or not values <= PROMPTS or ("none" in values and len(values) > 1):
            raise InvalidRequestError("prompt is none alone, or any of login, consent, select_account.")
    max_age = data.get("max_age")
    if max_age is not None and not (max_age.isascii() and max_age.isdigit()):
        raise InvalidRequestError("max_age is a number of seconds.")
