"""Starlette → Authlib: the body is read asynchronously here, then Authlib works on a complete, immutable request.

Form bodies must be `application/x-www-form-urlencoded` (RFC 6749 §3.2) and carry each parameter at most once
(RFC 6749 §3.1, §3.2); the presented client certificate rides along for client authentication and token binding.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc6749.requests import JsonPayload, JsonRequest, OAuth2Payload

from gateway.body import read_body
from gateway.call import ClientCertificate
from gateway.json_body import InvalidJson, loads_request

MAX_FORM_BYTES = 64 * 1024


class FormPayload(OAuth2Payload):
    def __init__(self, data: dict[str, str]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list]:
        return defaultdict(list, {key: [value] for key, value in self._data.items()})


class GatewayRequest(OAuth2Request):
    """An Authlib request whose parameters are fixed: the query (authorization endpoint) or the form (the rest).

    `admit(client_id)`, where the endpoint has one (PAR), charges the authenticated client's rate limit and raises
    the gateway's Refusal over it; routes.py sets it.
    """

    def __init__(self, method: str, uri: str, headers: dict[str, str], params: dict[str, str],
                 certificate: ClientCertificate | None, from_form: bool) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = FormPayload(params)
        self.certificate = certificate
        self._from_form = from_form
        self.admit: Callable[[str], None] | None = None

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data if self._from_form else {}

    @property
    def args(self) -> dict[str, str]:
        return {} if self._from_form else self.payload.data


class JsonBody(JsonPayload):
    def __init__(self, data: dict) -> None:
        self._data = data

    @property
    def data(self) -> dict:
        return self._data


class GatewayJsonRequest(JsonRequest):
    def __init__(self, method: str, uri: str, headers: dict[str, str], data: dict,
                 certificate: ClientCertificate | None) -> None:
        super().__init__(method, uri, headers)
        self.payload = JsonBody(data)
        self.certificate = certificate


def describable(text: str) -> str:
    """`text` as an `error_description` may carry it (RFC 6749 §5.2: printable ASCII but `"` and `\\`): what a
    library or a caller put in it (a claim name in quotes, a URI with a backslash) is replaced, not a 500."""
    bad = set(invalid_error_characters(text))
    return "".join("'" if c == '"' else "?" if c in bad else c for c in text)


def single_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """RFC 6749 §3.1/§3.2: a parameter sent twice is an invalid_request, never silently one of its values.

    The error names the parameter only if its name may appear in an `error_description` (RFC 6749 §5.2: printable
    ASCII but `"` and `\\`); Authlib refuses to build the error otherwise, which would be a 500.
    """
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            name = "" if invalid_error_characters(key) else f" '{key}'"
            raise InvalidRequestError(f"The parameter{name} is given more than once.")
        params[key] = value
    return params


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def request_url(issuer: str, path: str, params: dict[str, str] | None = None) -> str:
    """The request's URL as Authlib sees it: on the issuer's https origin (never the insecure-transport flag)."""
    return issuer + path + ("?" + urlencode(params) if params else "")


async def form_request(scope, receive, issuer: str, certificate: ClientCertificate | None, *,
                       max_bytes: int = MAX_FORM_BYTES) -> GatewayRequest:
    """The form of a back-channel POST; a body over `max_bytes` is refused (413 `request.too_large`) unread."""
    headers = _headers(scope)
    body = await read_body(receive, max_bytes, scope["headers"])
    if scope["method"] != "POST":
        raise InvalidRequestError("Use POST.")
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise InvalidRequestError("The body must be application/x-www-form-urlencoded.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("The body is not a valid form.") from None
    return GatewayRequest("POST", request_url(issuer, scope["path"]), headers, single_values(pairs), certificate,
                          from_form=True)


async def json_request(scope, receive, issuer: str, certificate: ClientCertificate | None) -> GatewayJsonRequest:
    headers = _headers(scope)
    body = await read_body(receive, MAX_FORM_BYTES)
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise InvalidRequestError("The body must be application/json.")
    try:
        data = loads_request(body)
    except InvalidJson as exc:
        raise InvalidRequestError(f"The body is not JSON: {describable(str(exc))}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The body must be a JSON object.")
    return GatewayJsonRequest(scope["method"], request_url(issuer, scope["path"]), headers, data, certificate)


def query_request(issuer: str, path: str, params: dict[str, str], headers: dict[str, str],
                  certificate: ClientCertificate | None = None) -> GatewayRequest:
    """An authorization-endpoint request built from parameters the gateway holds (a pushed request)."""
    return GatewayRequest("GET", request_url(issuer, path, params), headers, params, certificate, from_form=False)
