"""The gateway's own OpenAPI document (`GET /openapi.json`): every TPP-facing operation, built from data once per
worker, never restated by hand.

- the proxied routes come from the PolicySet (routes.yaml), so a route added there is documented by itself; the
  consent API from the table app.py wires it from (`policy.model.CONSENT_API`);
- their parameters, request bodies and answers are the vendored UK OB v3.1.11 documents' own, by reference to their
  component schemas (copied in with everything they reference, so every `#/components/...` resolves here); a route
  UK OB does not define gets its path parameters, the FAPI headers and its policy's `response_type`;
- their refusals are the catalogue's (`errors.REASONS`, each status with its reason ids) in `OBErrorResponse1`;
- the authorization server's TPP endpoints (discovery's PATHS) with their form parameters, answering refusals in
  RFC 6749 §5.2 error JSON.

OpenAPI 3.0, like the UK OB documents whose Schema Objects it references. 3.0 has no `mutualTLS` security scheme
(3.1 added it): mutual TLS is said in the token schemes' descriptions and by `x-mutual-tls` on each operation.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from gateway import __version__, specs
from gateway.call import SCOPE_KEY
from gateway.errors import OAUTH_ERRORS, REASONS, Refusal
from gateway.oauth import jarm
from gateway.oauth.client_auth import ASSERTION_TYPE
from gateway.oauth.discovery import PATHS
from gateway.oauth.models import AUTH_METHODS, GRANT_TYPES
from gateway.policy import PolicySet, RoutePolicy
from gateway.policy.model import path_parameters

PATH = "/openapi.json"
# Headers the security schemes stand for (OpenAPI 3.0 ignores an `Authorization` parameter anyway).
_SECURITY_PARAMETERS = frozenset({"Authorization"})
# What a route UK OB does not define takes, besides its path parameters (FAPI headers, as UK OB declares them).
_FAPI_HEADERS = ("x-fapi-auth-date", "x-fapi-customer-ip-address", "x-fapi-interaction-id", "x-customer-user-agent")
# The refusals the gateway itself can make around an authorization-server call (body, store, audit, a fault),
# rendered there as OAuth error JSON; Authlib's own errors are 400 and 401 (RFC 6749 §5.2).
_AROUND_OAUTH = ("request.too_large", "request.incomplete", "store.unavailable", "audit.unavailable",
                 "error.unexpected")
_PUSHED_LIMIT = ("ratelimit.exceeded",)  # PAR also counts against the TPP's rate limit (429, Retry-After)
_AUTHLIB = {400: "the authorization server's errors (`invalid_request`, `invalid_grant`, ...)",
            401: "`invalid_client` (the client could not be authenticated), `invalid_token`",
            403: "`access_denied` (RFC 7592: not a registration the client may change), `insufficient_scope`"}
_PUBLIC = ("audit.unavailable", "error.unexpected")  # all a public document's GET can meet
_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_MUTUAL_TLS = "required"


def _vendored_operation(method: str, path: str) -> tuple[str | None, dict | None]:
    """(api, UK OB operation) of a public path, by the UK OB document whose server URL prefixes it."""
    found: tuple[str | None, dict | None] = (None, None)
    for api in specs.APIS:
        base = specs.openapi(api)["servers"][0]["url"]
        if path.startswith(base + "/"):
            operation = specs.openapi(api)["paths"].get(path[len(base):], {}).get(method.lower())
            if operation is not None:
                return api, operation
            found = found if found[0] else (api, None)
    return found


class _Components:
    """The UK OB components the document references, adopted under their own names. A name the two UK OB documents
    define differently (`OBPostalAddress6`) is kept apart as `<Name>.<api>` for the second one met."""

    def __init__(self) -> None:
        self.sections: dict[str, dict] = defaultdict(dict)
        self._local: dict[tuple[str, str, str], str] = {}

    def adopt(self, api: str, node):
        """`node` (a UK OB fragment of `api`) with its references made local."""
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/"):
                return {"$ref": self.ref(api, *ref.split("/")[2:])}
            return {key: self.adopt(api, value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.adopt(api, value) for value in node]
        return node

    def ref(self, api: str, section: str, name: str) -> str:
        key = (api, section, name)
        if key not in self._local:
            adopted = self.adopt(api, specs.openapi(api)["components"][section][name])
            local = name if self.sections[section].get(name, adopted) == adopted else f"{name}.{api}"
            self.sections[section][local] = adopted
            self._local[key] = local
        return f"#/components/{section}/{self._local[key]}"

    def schema(self, api: str, name: str) -> dict:
        return {"$ref": self.ref(api, "schemas", name)}

    def parameter(self, api: str, name: str) -> dict:
        return {"$ref": self.ref(api, "parameters", name)}


def _response(api: str, response: dict) -> tuple[str, dict | None]:
    """(description, JSON schema) of a UK OB response object (a `#/components/responses/...` reference)."""
    if "$ref" in response:
        response = specs.openapi(api)["components"]["responses"][response["$ref"].split("/")[-1]]
    content: dict = response.get("content", {})
    media: dict = content.get(_JSON) or next(iter(content.values()), {})
    return response["description"], media.get("schema")


class _Builder:
    def __init__(self) -> None:
        self.components = _Components()
        self.paths: dict[str, dict] = defaultdict(dict)

    # Answers
    def answer(self, description: str, schema: dict | None = None) -> dict:
        response = {"description": description,
                    "headers": {"x-fapi-interaction-id": {"$ref": "#/components/headers/x-fapi-interaction-id"}}}
        if schema is not None:
            response["content"] = {_JSON: {"schema": schema}}
        return response

    def refusals(self, reason_ids: Iterable[str], oauth: bool = False) -> dict[str, dict]:
        """The statuses `reason_ids` answer with, each a shared response."""
        statuses = sorted({REASONS[reason_id].status for reason_id in reason_ids})
        return {str(status): {"$ref": self.refusal(status, oauth)} for status in statuses}

    def refusal(self, status: int, oauth: bool) -> str:
        """The shared response of a refusal status: in OAuth error JSON its reasons around an AS call and
        Authlib's errors, else in OBErrorResponse1 every catalogued reason with that status."""
        name = f"{'OAuthError' if oauth else 'Refusal'}{status}"
        responses = self.components.sections["responses"]
        if name not in responses:
            reasons = [f"`{r}`" for r in ((*_AROUND_OAUTH, *_PUSHED_LIMIT) if oauth else REASONS)
                       if REASONS[r].status == status]
            if oauth and status in _AUTHLIB:
                reasons.insert(0, _AUTHLIB[status])
            schema = {"$ref": "#/components/schemas/OAuthError"} if oauth else \
                self.components.schema("aisp", "OBErrorResponse1")
            responses[name] = self.answer("Refused: " + ", ".join(reasons) + ".", schema)
        return f"#/components/responses/{name}"

    # Operations
    def add(self, method: str, path: str, operation: dict) -> None:
        self.paths[path][method.lower()] = operation

    def ob_operation(self, method: str, path: str, operation_id: str, security: dict,
                     route: RoutePolicy | None = None) -> None:
        """A UK OB operation: the vendored definition where UK OB has one, else what the policy says."""
        api, vendored = _vendored_operation(method, path)
        components = self.components
        if vendored is not None and api is not None:
            parameters = [components.adopt(api, p) for p in vendored.get("parameters", ())
                          if p.get("$ref", "").split("/")[-1] not in _SECURITY_PARAMETERS]
            status, vendored_answer = next((s, r) for s, r in vendored["responses"].items() if s.startswith("2"))
            description, schema = _response(api, vendored_answer)
            operation = {"tags": vendored.get("tags", []), "summary": vendored.get("summary", operation_id)}
            body = vendored.get("requestBody", {}).get("content", {}).get(_JSON, {}).get("schema")
        else:
            parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                          for name in path_parameters(path)]
            parameters += [components.parameter("aisp", name) for name in _FAPI_HEADERS]
            status, description, schema, body = "2XX", "The back-end's answer", None, None
            operation = {"summary": operation_id}
        if route is not None:
            for required, name in ((route.idempotency_required, "x-idempotency-key"),
                                   (route.signature_required, "x-jws-signature")):
                local = components.parameter("aisp", name)
                if required and local not in parameters:
                    parameters.append(local)
        response_type = route.response_type if route is not None else None
        if response_type:
            api = api or specs.api_of(response_type)
            schema = components.schema(api, response_type)
        elif schema is not None and api is not None:
            schema = components.adopt(api, schema)
        answer = self.answer(description, schema)
        if route is not None and route.fields is not None and route.fields.media_types is not None:
            # A file (a statement's PDF): the bank's document, in the media types its policy names.
            answer["content"] = {media_type: {"schema": {"type": "string", "format": "binary"}}
                                 for media_type in sorted(route.fields.media_types)}
        operation.update({
            "operationId": operation_id, "parameters": parameters,
            "responses": {status: answer, **self.refusals(REASONS)},
            "security": [security], "x-mutual-tls": _MUTUAL_TLS,
        })
        if body is not None and api is not None:
            operation["requestBody"] = {"required": True,
                                        "content": {_JSON: {"schema": components.adopt(api, body)}}}
        self.add(method, path, operation)

    def oauth_operation(self, method: str, path: str, operation_id: str, summary: str, answers: dict,
                        form: dict | None = None, json_body: dict | None = None, also: tuple[str, ...] = (),
                        jwt_body: str | None = None, **extra) -> None:
        """`also`: reasons this endpoint may refuse with besides those around every AS call; `jwt_body`: the body
        may instead be a JWT (`application/jwt`) so described."""
        refusals = {**self.refusals((*_AROUND_OAUTH, *also), oauth=True),
                    **{str(status): {"$ref": self.refusal(status, True)} for status in _AUTHLIB}}
        operation = {"tags": ["Authorization server"], "summary": summary, "operationId": operation_id,
                     "responses": {**answers, **dict(sorted(refusals.items()))}, "security": [],
                     "x-mutual-tls": _MUTUAL_TLS, **extra}
        if form is not None or json_body is not None:
            media, schema = (_FORM, form) if form is not None else (_JSON, json_body)
            operation["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
        if jwt_body is not None:
            operation["requestBody"]["content"]["application/jwt"] = {
                "schema": {"type": "string", "description": jwt_body}}
        self.add(method, path, operation)

    def public(self, path: str, operation_id: str, summary: str, schema: dict) -> None:
        """A public document: no certificate, no token; a refusal on /oauth2/ is OAuth JSON (RenderErrors)."""
        self.add("GET", path, {
            "tags": ["Documents"], "summary": summary, "operationId": operation_id, "security": [],
            "responses": {"200": self.answer(summary, schema),
                          **self.refusals(_PUBLIC, oauth=path.startswith("/oauth2/"))}})


def _object(required: Iterable[str] = (), **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_STRING, _INTEGER = {"type": "string"}, {"type": "integer"}
_CLIENT_AUTHENTICATION = {
    "client_id": {"type": "string", "description": "The client (`tls_client_auth`: with its certificate)."},
    "client_assertion_type": {"type": "string", "enum": [ASSERTION_TYPE]},
    "client_assertion": {"type": "string", "description": "`private_key_jwt`: a JWT signed by the client's key, "
                                                          "`aud` the issuer."},
}
_CLIENT_METADATA = _object(
    ["client_id"], client_id=_STRING, client_id_issued_at=_INTEGER, client_name=_STRING,
    redirect_uris={"type": "array", "items": _STRING},
    token_endpoint_auth_method={"type": "string", "enum": list(AUTH_METHODS)},
    grant_types={"type": "array", "items": _STRING}, response_types={"type": "array", "items": _STRING},
    scope=_STRING, software_id=_STRING, software_roles={"type": "array", "items": _STRING},
    tls_client_auth_subject_dn=_STRING, jwks=_object(["keys"], keys={"type": "array", "items": {"type": "object"}}),
    tls_client_certificate_bound_access_tokens={"type": "boolean"}, registration_client_uri=_STRING)


def _authorization_server(builder: _Builder) -> None:
    """The AS's TPP endpoints: token, PAR, revocation, introspection, registration and its management."""

    def form(required: Iterable[str], **properties: Any) -> dict[str, Any]:
        return _object(required, **_CLIENT_AUTHENTICATION, **properties)
    token_hint = {"type": "string", "enum": ["access_token", "refresh_token"]}
    builder.oauth_operation("POST", PATHS["token_endpoint"], "oauth.token", "Token (RFC 6749 §3.2)", {
        "200": builder.answer("Tokens: the access token is a JWT bound to the client certificate (RFC 8705)", _object(
            ["access_token", "token_type", "expires_in"], access_token=_STRING, token_type=_STRING,
            expires_in=_INTEGER, scope=_STRING, refresh_token=_STRING, id_token=_STRING))},
        form=form(["grant_type"], grant_type={"type": "string", "enum": list(GRANT_TYPES)}, scope=_STRING,
                  code=_STRING, redirect_uri=_STRING, code_verifier=_STRING, refresh_token=_STRING))
    builder.oauth_operation(
        "POST", PATHS["pushed_authorization_request_endpoint"], "oauth.par", "Pushed authorization request (RFC 9126)",
        {"201": builder.answer("The request_uri for the authorization endpoint",
                               _object(["request_uri", "expires_in"], request_uri=_STRING, expires_in=_INTEGER))},
        form=form(["client_id"], response_type={"type": "string", "enum": ["code"]}, redirect_uri=_STRING,
                  scope=_STRING, state=_STRING, nonce=_STRING, code_challenge=_STRING,
                  code_challenge_method={"type": "string", "enum": ["S256"]},
                  consent_id={"type": "string", "description": "The consent (`ConsentId`) to authorise."},
                  response_mode={"type": "string", "enum": list(jarm.MODES)},
                  claims={"type": "string", "description": "OIDC requested claims (JSON); "
                          "`id_token.openbanking_intent_id.value` names the consent."},
                  request={"type": "string", "description": "RFC 9101: the whole request as a JWT signed (PS256, "
                           "ES256) by the client's registered key; then only it is used."}),
        also=_PUSHED_LIMIT)
    builder.oauth_operation("POST", PATHS["revocation_endpoint"], "oauth.revoke", "Revocation (RFC 7009)",
                            {"200": builder.answer("Revoked, or not a token of this client", {"type": "object"})},
                            form=form(["token"], token=_STRING, token_type_hint=token_hint))
    builder.oauth_operation("POST", PATHS["introspection_endpoint"], "oauth.introspect", "Introspection (RFC 7662)",
                            {"200": builder.answer("The token's state", _object(
                                ["active"], active={"type": "boolean"}, scope=_STRING, client_id=_STRING,
                                sub=_STRING, exp=_INTEGER, token_type=_STRING))},
                            form=form(["token"], token=_STRING, token_type_hint=token_hint))
    for method, operation_id in (("GET", "oauth.userinfo"), ("POST", "oauth.userinfo.post")):
        builder.oauth_operation(method, PATHS["userinfo_endpoint"], operation_id, "UserInfo (OIDC Core §5.3)",
                                {"200": builder.answer("The customer's pseudonymous sub and the consent", _object(
                                    ["sub"], sub=_STRING, openbanking_intent_id=_STRING))},
                                security=[{"PSUOAuth2Security": ["openid"]}])
    register = PATHS["registration_endpoint"]
    signed_registration = ("UK OB DCR: the metadata and `software_statement` as claims of a JWT the client signs "
                           "with a key of its statement (`iss` its software_id, `aud` the issuer, `iat`, `exp`, "
                           "`jti`).")
    registration = _object(
                                ["software_statement", "token_endpoint_auth_method"],
                                software_statement={"type": "string", "description": "A JWT signed by the "
                                                    "directory; its software_id is the certificate's CN."},
                                token_endpoint_auth_method={"type": "string", "enum": list(AUTH_METHODS)},
                                redirect_uris={"type": "array", "items": _STRING},
                                grant_types={"type": "array", "items": _STRING},
                                response_types={"type": "array", "items": _STRING},
                                tls_client_auth_subject_dn=_STRING)
    builder.oauth_operation("POST", register, "oauth.register", "Dynamic client registration (RFC 7591)",
                            {"201": builder.answer("The registered client", _CLIENT_METADATA)},
                            json_body=registration, jwt_body=signed_registration)
    managed: dict[str, Any] = {"parameters": [{"name": "client_id", "in": "path", "required": True, "schema": _STRING}],
               "security": [{"TPPOAuth2Security": []}]}
    builder.oauth_operation("PUT", register + "/{client_id}", "oauth.register.put",
                            "Update a registration (RFC 7592)",
                            {"200": builder.answer("The registered client", _CLIENT_METADATA)},
                            json_body=registration, jwt_body=signed_registration, **managed)
    builder.oauth_operation("GET", register + "/{client_id}", "oauth.register.get", "Read a registration (RFC 7592)",
                            {"200": builder.answer("The registered client", _CLIENT_METADATA)}, **managed)
    builder.oauth_operation("DELETE", register + "/{client_id}", "oauth.register.delete",
                            "Delete a registration (RFC 7592)", {"204": builder.answer("Deleted")}, **managed)


def _security_schemes(issuer: str) -> dict:
    scopes = {"accounts": "Account information (AISP)", "payments": "Payment initiation (PISP)",
              "fundsconfirmations": "Confirmation of funds (CBPII)", "openid": "OpenID Connect (UserInfo)"}
    bound = ("Sent as `Authorization: Bearer`; a JWT bound to the client certificate (RFC 8705 `cnf.x5t#S256`), "
             "so only good over mutual TLS with the certificate it was issued to.")
    return {
        "TPPOAuth2Security": {"type": "oauth2", "description": f"A client-credentials token. {bound}", "flows": {
            "clientCredentials": {"tokenUrl": issuer + PATHS["token_endpoint"], "scopes": scopes}}},
        "PSUOAuth2Security": {"type": "oauth2", "description": f"A token of a consent the customer authorised. "
                              f"{bound}", "flows": {"authorizationCode": {
                                  "authorizationUrl": issuer + PATHS["authorization_endpoint"],
                                  "tokenUrl": issuer + PATHS["token_endpoint"], "scopes": scopes}}},
    }


def build_document(policy: PolicySet, consent_api: Mapping[str, tuple[str, Mapping[str, str]]], issuer: str) -> dict:
    """The OpenAPI 3.0 document; `consent_api` is `policy.model.CONSENT_API`: path → (scope, {method: route id})."""
    builder = _Builder()
    for path, (scope, route_ids) in consent_api.items():
        for method, route_id in route_ids.items():
            builder.ob_operation(method, path, route_id, {"TPPOAuth2Security": [scope]})
    for route in policy.routes:
        builder.ob_operation(route.method, route.path, route.id,
                             {"PSUOAuth2Security": [route.scope] if route.scope else []}, route)
    _authorization_server(builder)
    metadata = _object(["issuer", "token_endpoint", "jwks_uri"], issuer=_STRING,
                       **{name: _STRING for name in PATHS})
    builder.public("/.well-known/openid-configuration", "oauth.discovery", "OpenID Connect Discovery", metadata)
    builder.public("/.well-known/oauth-authorization-server", "oauth.metadata",
                   "Authorization server metadata (RFC 8414)", metadata)
    builder.public(PATHS["jwks_uri"], "oauth.jwks", "The token signing keys (JWK Set)",
                   _object(["keys"], keys={"type": "array", "items": {"type": "object"}}))
    builder.public(PATH, "openapi", "This document", {"type": "object"})
    components = builder.components
    components.sections["schemas"]["OAuthError"] = _object(
        ["error"], error={"type": "string", "description": "An RFC 6749 §5.2 error code: "
                          + ", ".join(OAUTH_ERRORS) + "."}, error_description=_STRING, error_uri=_STRING)
    return {
        "openapi": "3.0.3",
        "info": {"title": "obgw: open-banking API gateway", "version": __version__, "description": (
            "Every TPP-facing operation of the gateway. Each needs mutual TLS with the TPP's certificate "
            "(`x-mutual-tls: required`) except the public documents. Refusals are UK OB `OBErrorResponse1` (the "
            "gateway's, or the bank's own 4xx on a proxied call), or RFC 6749 error JSON from the authorization "
            "server; every answer carries `x-fapi-interaction-id`.")},
        "servers": [{"url": issuer}],
        "paths": {path: builder.paths[path] for path in sorted(builder.paths)},
        "components": {
            **{section: dict(sorted(entries.items())) for section, entries in sorted(components.sections.items())},
            "headers": {"x-fapi-interaction-id": {"description": "The interaction id (RFC 4122 UUID): the "
                                                  "request's if it sent one, else a new one.", "required": True,
                                                  "schema": {"type": "string", "format": "uuid"}}},
            "securitySchemes": _security_schemes(issuer),
        },
    }


class OpenApiDocument:
    """`GET /openapi.json`: the document, serialised once; public (documentation), audited like every call."""

    def __init__(self, document: dict) -> None:
        self._body = orjson.dumps(document)

    async def __call__(self, scope, receive, send) -> None:
        scope[SCOPE_KEY].route_template = PATH
        if scope["method"] not in ("GET", "HEAD"):
            raise Refusal("route.method_not_allowed", headers={"Allow": "GET, HEAD"})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self._body)).encode()),
                   (b"cache-control", b"public, max-age=300")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._body if scope["method"] == "GET" else b""})
