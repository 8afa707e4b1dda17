"""Dynamic Client Registration (RFC 7591) with a software statement, and its management (RFC 7592 GET/DELETE).

Over mutual TLS only. The software statement (§2.3) must be a JWT signed by a key of the configured directory
(UK OB Directory style); the client's name, roles, redirect URIs and signing keys come from it (never from the
request body), and the registering certificate becomes the client's registered certificate. No client secret is ever
issued (FAPI: tls_client_auth or private_key_jwt only). Management is authenticated by the client's certificate and
one of its own access tokens.

A statement registers once and only while fresh (its `jti`, `iat` and `exp`), and the software of a client an
operator disabled, or that was deleted, is refused until an operator enables it again: a TPP that was stopped cannot
come back under a new client id with its statement and certificate.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc7591 import (
    InvalidClientMetadataError,
    InvalidSoftwareStatementError,
    UnapprovedSoftwareStatementError,
)
from jwt.algorithms import ECAlgorithm, RSAPSSAlgorithm

from gateway.oauth.client_auth import ASSERTION_ALGORITHMS, CLOCK_SKEW
from gateway.oauth.models import AUTH_METHODS, GRANT_TYPES, ROLES, Client, common_name
from gateway.oauth.requests import describable
from gateway.oauth.server import OAuthResponse
from gateway.store.oauth import digest

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Pragma", "no-cache")]


_KEY_ALGORITHM: dict[str, tuple[str, Callable[[str], Any]]] = {
    "EC": ("ES256", ECAlgorithm.from_jwk), "RSA": ("PS256", RSAPSSAlgorithm.from_jwk)}
# RFC 7591 §2.3 leaves it to the server which statements it accepts: here one minted in the last day (the directory
# mints one for the registration at hand; a day allows for slack and clocks), never past its exp (UK OB DCR: a
# request past exp is rejected), and once: its jti is remembered while it could be accepted (RFC 7519 §4.1.7).
STATEMENT_MAX_AGE = 86_400


def load_directory_keys(path: Path) -> dict[str, tuple[str, Any]]:
    """kid → (its algorithm, public key) of the directory's JWKS; missing file: no directory trusted."""
    if not Path(path).exists():
        return {}
    keys = {}
    for jwk in orjson.loads(Path(path).read_bytes()).get("keys", []):
        if jwk.get("kty") in _KEY_ALGORITHM:
            alg, loader = _KEY_ALGORITHM[jwk["kty"]]
            keys[jwk.get("kid", "")] = (alg, loader(orjson.dumps(jwk).decode()))
    return keys


@dataclass
class ManagementRequest:
    method: str
    client_id: str
    bearer: str | None
    certificate: object
    client: Client | None = None


class Registration:
    def __init__(self, server) -> None:
        self.server = server
        self.directory = load_directory_keys(server.settings.directory_jwks)

    # POST /oauth2/register
    def register(self, request) -> OAuthResponse:
        try:
            return self._register(request)
        except OAuth2Error as error:
            return self.server.handle_error_response(request, error)

    def _register(self, request) -> OAuthResponse:
        if request.certificate is None:
            raise InvalidClientError(status_code=401, description="Registration needs mutual TLS.")
        metadata = dict(request.payload.data)
        statement = self._software_statement(metadata.pop("software_statement", None))
        software_id = statement["software_id"]
        # UK OB DCR: the transport certificate is the software's own (its CN is the software_id), so a statement
        # cannot be registered by another TPP's certificate.
        if common_name(request.certificate.subject) != software_id:
            raise InvalidSoftwareStatementError("The software_statement's software_id is not the client "
                                                "certificate's common name.")
        # RFC 7591 §3.2.2: a statement this server does not approve. A disabled or deleted client's software stays
        # refused until an operator enables it (`obgw clients enable`).
        if self.server.clients.software_refused(software_id):
            raise UnapprovedSoftwareStatementError(f"The software {software_id} was disabled or deleted here; "
                                                   "ask the bank to enable it again.")
        method = metadata.get("token_endpoint_auth_method")
        if method not in AUTH_METHODS:
            raise InvalidClientMetadataError(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}.")
        allowed_uris = _strings(statement.get("software_redirect_uris"), "software_redirect_uris")
        redirect_uris = _strings(metadata.get("redirect_uris", allowed_uris), "redirect_uris")
        if not redirect_uris or not set(redirect_uris) <= set(allowed_uris):
            raise InvalidClientMetadataError("redirect_uris must be among the software statement's redirect URIs.")
        if any(not uri.startswith("https://") for uri in redirect_uris):
            raise InvalidClientMetadataError("redirect_uris must be https URLs.")
        roles = _strings(statement.get("software_roles"), "software_roles")
        if not roles or not set(roles) <= set(ROLES):
            raise InvalidSoftwareStatementError(f"software_roles must be among {', '.join(ROLES)}.")
        for name, allowed in (("grant_types", GRANT_TYPES), ("response_types", ("code",))):
            if not set(_strings(metadata.get(name, list(allowed)), name)) <= set(allowed):
                raise InvalidClientMetadataError(f"{name} must be among {', '.join(allowed)}.")
        subject_dn = metadata.get("tls_client_auth_subject_dn")
        if subject_dn is not None and subject_dn != request.certificate.subject:
            raise InvalidClientMetadataError("tls_client_auth_subject_dn is not the presented certificate's subject.")
        # RFC 7591 §2.3: the statement's values take precedence; the keys that authenticate the client come only
        # from what the directory signed, so keys sent beside the statement are refused rather than weighed.
        if "jwks" in metadata or "jwks_uri" in metadata:
            raise InvalidClientMetadataError("The client's keys come from the software statement (software_jwks) "
                                             "only: send no jwks or jwks_uri.")
        jwks = statement.get("software_jwks") or {"keys": []}
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise InvalidSoftwareStatementError("software_jwks must be a JWK Set.")
        if any(not isinstance(k, dict) or _PRIVATE_MEMBERS & set(k) for k in jwks["keys"]):
            raise InvalidSoftwareStatementError("software_jwks must hold public keys only.")
        if method == "private_key_jwt" and not jwks["keys"]:
            raise InvalidClientMetadataError("private_key_jwt needs the software statement's keys (software_jwks).")
        client = Client(
            client_id=secrets.token_urlsafe(16), client_name=str(statement.get("software_client_name") or software_id),
            roles=tuple(roles), redirect_uris=tuple(redirect_uris), auth_methods=(method,),
            cert_thumbprints=(request.certificate.thumbprint,), subject_dn=request.certificate.subject,
            issuer_dn=request.certificate.issuer, jwks=jwks, software_id=software_id,
            created_at=int(time.time()), origin="dcr")
        # Claimed last, so a request refused for its metadata does not use the statement up.
        if not self.server.clients.claim_statement(digest(f"{statement['iss']}\n{statement['jti']}"),
                                                   _usable_for(statement)):
            raise InvalidSoftwareStatementError("The software_statement was used already (its jti): get a new one "
                                                "from the directory.")
        self.server.clients.add(client.to_document())
        request.client = client
        return OAuthResponse(201, self._describe(client), list(_JSON))

    def _software_statement(self, statement) -> dict:
        # RFC 7591 §3.2.2: invalid_software_statement / unapproved_software_statement.
        if not isinstance(statement, str) or not statement:
            raise InvalidSoftwareStatementError("A software_statement signed by the directory is required.")
        try:
            header = jwt.get_unverified_header(statement)
        except jwt.PyJWTError:
            raise InvalidSoftwareStatementError("The software_statement is not a JWT.") from None
        if header.get("alg") not in ASSERTION_ALGORITHMS:
            raise InvalidSoftwareStatementError("The software_statement must be signed (ES256 or PS256).")
        trusted = self.directory.get(header["kid"]) if isinstance(header.get("kid"), str) else None
        if trusted is None:
            raise UnapprovedSoftwareStatementError("The software_statement is not signed by a trusted directory.")
        alg, key = trusted
        if header["alg"] != alg:  # the key decides the algorithm, never the header (RFC 8725 §3.1)
            raise InvalidSoftwareStatementError(f"The directory's key {header['kid']} signs with {alg}.")
        try:
            # exp, where the statement has one, is honoured (UK OB DCR: a request past it must be rejected).
            claims = jwt.decode(statement, key, algorithms=[alg], leeway=CLOCK_SKEW,
                                options={"require": ["iss", "iat", "jti", "software_id"], "verify_aud": False})
        except jwt.PyJWTError as exc:
            raise InvalidSoftwareStatementError(describable(f"The software_statement is not valid: {exc}.")) \
                from None
        if not isinstance(claims["software_id"], str) or not isinstance(claims["iss"], str) \
                or type(claims["iat"]) not in (int, float):
            raise InvalidSoftwareStatementError("software_id and iss must be strings and iat a NumericDate.")
        if claims["iat"] < time.time() - STATEMENT_MAX_AGE - CLOCK_SKEW:
            raise InvalidSoftwareStatementError(f"The software_statement is older than {STATEMENT_MAX_AGE} s (its "
                                                "iat): get a new one from the directory.")
        return claims

    def _describe(self, client: Client) -> dict:
        """RFC 7591 §3.2.1 client information response (no secret: FAPI clients have none). A member the client
        has no value for (a client added by `obgw clients add` has no software_id) is left out, never null."""
        information = {
            "client_id": client.client_id, "client_id_issued_at": client.created_at,
            "client_name": client.client_name, "redirect_uris": list(client.redirect_uris),
            "token_endpoint_auth_method": client.auth_methods[0], "grant_types": list(GRANT_TYPES),
            "response_types": ["code"], "scope": " ".join(sorted(client.scopes)), "software_id": client.software_id,
            "software_roles": list(client.roles), "tls_client_auth_subject_dn": client.subject_dn,
            "jwks": dict(client.jwks), "tls_client_certificate_bound_access_tokens": True,
            "registration_client_uri": f"{self.server.issuer}/oauth2/register/{client.client_id}",
        }
        return {name: value for name, value in information.items() if value is not None}

    # GET | DELETE /oauth2/register/{client_id} (RFC 7592)
    async def adapt_management(self, scope, receive, issuer, certificate) -> ManagementRequest:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        return ManagementRequest(scope["method"], scope["path_params"]["client_id"], bearer, certificate)

    def manage(self, request: ManagementRequest) -> OAuthResponse:
        try:
            client = self._managed_client(request)
        except OAuth2Error as error:
            return self.server.handle_error_response(None, error)
        request.client = client
        if request.method == "GET":
            return OAuthResponse(200, self._describe(client), list(_JSON))
        if request.method == "DELETE":
            self.server.clients.delete(client.client_id, client.software)
            return OAuthResponse(204, "", [("Cache-Control", "no-store")])
        return self.server.handle_error_response(None, InvalidRequestError("Use GET or DELETE."))

    def _managed_client(self, request: ManagementRequest) -> Client:
        """RFC 7592 §3: the client's own access token, over the client's own certificate."""
        client = self.server.query_client(request.client_id)
        token = self.server.access_token(request.bearer) if request.bearer else None
        if (client is None or token is None or token.revoked or token.client_id != client.client_id
                or not client.matches_certificate(request.certificate)
                or token.claims["cnf"]["x5t#S256"] != getattr(request.certificate, "thumbprint", None)):
            raise InvalidClientError(status_code=401, description="Use the client's certificate and access token.")
        return client


def _usable_for(statement: dict) -> int:
    """Seconds from now until the statement can no longer be accepted (past its exp, or too old)."""
    until = statement["iat"] + STATEMENT_MAX_AGE
    if type(statement.get("exp")) in (int, float):
        until = min(until, statement["exp"])
    return int(until + CLOCK_SKEW - time.time()) + 1


def _strings(value, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidClientMetadataError(f"{name} must be a list of strings.")
    return value
