"""The authorization server's HTTP surface: thin ASGI endpoints that adapt the request and hand it to Authlib.

Authlib runs in a worker thread (it is synchronous, with the sync Redis client); its answer is sent as it made it
(OAuth error JSON, redirects), and a refusal is marked on the Call so the audit record carries its reason.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import orjson
from authlib.oauth2.rfc6749 import OAuth2Error
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from gateway.call import SCOPE_KEY, Call
from gateway.errors import oauth_reason
from gateway.oauth import par, userinfo
from gateway.oauth.discovery import PATHS, metadata
from gateway.oauth.registration import Registration
from gateway.oauth.requests import form_request
from gateway.oauth.server import GatewayAuthorizationServer, OAuthResponse
from gateway.oauth.userinfo import UserInfo
from gateway.policy.model import RateLimits
from gateway.ratelimit import RateLimitArgs, conclude
from gateway.store.admission import RateArgs


def _send(call: Call, response: OAuthResponse) -> Response:
    body = response.body
    if response.status >= 400 and isinstance(body, dict):
        call.refuse(oauth_reason(str(body.get("error"))))
    content = orjson.dumps(body) if isinstance(body, (dict, list)) else (body or b"")
    headers = {k: v for k, v in response.headers if k.lower() != "content-length"}
    headers.setdefault("Cache-Control", "no-store")
    return Response(content, status_code=response.status, headers=headers)


def _json(document: dict, cache: str = "no-store") -> Response:
    return Response(orjson.dumps(document), media_type="application/json", headers={"Cache-Control": cache})


class _Endpoint:
    """One AS endpoint: sets the audited route, builds the Authlib request, runs `work` in a thread, sends."""

    def __init__(self, template: str, server: GatewayAuthorizationServer, adapt, work: Callable) -> None:
        self.template, self.server, self.adapt, self.work = template, server, adapt, work

    async def __call__(self, scope, receive, send) -> None:
        call: Call = scope[SCOPE_KEY]
        call.route_template = self.template
        try:
            request = await self.adapt(scope, receive, self.server.issuer, call.certificate)
        except OAuth2Error as error:
            response = self.server.handle_error_response(None, error)
        else:
            self.prepare(request, call)
            response = await run_in_threadpool(self.work, request)
            client = getattr(request, "client", None)
            call.client_id = client.client_id if client is not None else None
        await _send(call, response)(scope, receive, send)

    def prepare(self, request, call: Call) -> None:
        """What an endpoint adds to the adapted request before Authlib sees it (nothing, but for PAR)."""


class _Pushed(_Endpoint):
    """PAR (RFC 9126): a body of at most par.MAX_BODY_BYTES, and each push from an authenticated client charged to
    its rate limit (the RateLimit headers on the answer; over it, 429 with Retry-After, audited ratelimit.exceeded)."""

    def __init__(self, template: str, server: GatewayAuthorizationServer, rate: RateArgs) -> None:
        super().__init__(template, server, functools.partial(form_request, max_bytes=par.MAX_BODY_BYTES),
                         lambda request: server.create_endpoint_response(par.PushedAuthorizationEndpoint.ENDPOINT_NAME,
                                                                         request))
        self.rate = rate

    def prepare(self, request, call: Call) -> None:
        def admit(client_id: str) -> None:  # in Authlib's thread, once the client is authenticated
            call.client_id = client_id
            conclude(call, self.server.clients.charge(client_id, self.rate))
        request.admit = admit


class _Static:
    """A public, read-only document (discovery, JWKS)."""

    def __init__(self, template: str, build: Callable[[], dict], cache: str) -> None:
        self.template, self.build, self.cache = template, build, cache

    async def __call__(self, scope, receive, send) -> None:
        scope[SCOPE_KEY].route_template = self.template
        await _json(await run_in_threadpool(self.build), self.cache)(scope, receive, send)


def oauth_routes(server: GatewayAuthorizationServer, customer, limits: RateLimits) -> list[Route]:
    """Every AS route; `customer` is the web.authorize endpoints (login and consent pages); `limits` the policy's
    rate limits (pushed requests count against the TPP's)."""
    document = metadata(server.issuer)
    registration = Registration(server)

    def endpoint(template: str, work: Callable, adapt=form_request) -> Route:
        return Route(template, _Endpoint(template, server, adapt, work))

    return [
        Route("/.well-known/openid-configuration",
              _Static("/.well-known/openid-configuration", lambda: document, "public, max-age=300")),
        Route("/.well-known/oauth-authorization-server",
              _Static("/.well-known/oauth-authorization-server", lambda: document, "public, max-age=300")),
        Route(PATHS["jwks_uri"], _Static(PATHS["jwks_uri"], lambda: server.keys.ring().jwks(), "public, max-age=60")),
        endpoint(PATHS["token_endpoint"], server.create_token_response),
        Route(PATHS["pushed_authorization_request_endpoint"],
              _Pushed(PATHS["pushed_authorization_request_endpoint"], server, RateLimitArgs(limits)(par.ROUTE_ID))),
        endpoint(PATHS["revocation_endpoint"],
                 lambda request: server.create_endpoint_response("revocation", request)),
        endpoint(PATHS["introspection_endpoint"],
                 lambda request: server.create_endpoint_response("introspection", request)),
        endpoint(PATHS["userinfo_endpoint"], UserInfo(server).answer, adapt=userinfo.adapt),
        endpoint(PATHS["registration_endpoint"], registration.register, adapt=registration.adapt),
        endpoint(PATHS["registration_endpoint"] + "/{client_id}", registration.manage, adapt=registration.adapt),
        *(Route(path, step) for path, step in customer.endpoints()),
    ]
