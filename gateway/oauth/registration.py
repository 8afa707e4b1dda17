"""Dynamic Client Registration (RFC 7591, and the UK OB DCR form) and its management (RFC 7592 GET/PUT/DELETE).

Over mutual TLS only. The software statement (§2.3) must be a JWT signed by a key of the configured directory
(UK OB Directory style); the client's name, roles, signing keys and the redirect URIs it may use come from it (never
from the request), and the registering certificate becomes the client's registered certificate. No client secret is
ever issued (FAPI: tls_client_auth or private_key_jwt only).

The request comes in one of two forms. RFC 7591: a JSON body holding `software_statement` beside the metadata. UK OB
DCR v3.3: the body is itself a JWT (`Content-Type: application/jwt`) the TPP signed with a key of its statement's
`software_jwks` (PS256 or ES256), its `iss` the statement's `software_id`, its `aud` this issuer, short-lived and
single-use (`iat`, `exp`, `jti`), carrying the statement and the metadata as claims. Either way the metadata may only
narrow what the statement allows.

A statement registers once and only while fresh (its `jti`, `iat` and `exp`), and the software of a client an
operator disabled, or that was deleted, is refused until an operator enables it again: a TPP that was stopped cannot
come back under a new client id with its statement and certificate.

Management (`/oauth2/register/{client_id}`) is authenticated over the client's own certificate by either the
registration access token the 201 answer carried (RFC 7592; only its SHA-256 is stored) or one of the client's own
access tokens (UK OB DCR: a client-credentials token). PUT takes either request form and replaces the metadata within
the statement's allowance: the one it carries, else the one the client registered with.
"""
from __future__ import annotations

import dataclasses
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidClientError, InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7591 import (
    InvalidClientMetadataError,
    InvalidSoftwareStatementError,
    UnapprovedSoftwareStatementError,
)
from jwt.algorithms import ECAlgorithm, RSAPSSAlgorithm

from gateway.body import read_body
from gateway.call import ClientCertificate
from gateway.oauth.client_auth import (
    ASSERTION_ALGORITHMS,
    CLOCK_SKEW,
    FRESH_SECONDS,
    MAX_ASSERTION_SECONDS,
    MAX_JTI_CHARS,
    registered_key,
)
from gateway.oauth.models import AUTH_METHODS, GRANT_TYPES, ROLE_SCOPES, ROLES, Client, common_name
from gateway.oauth.requests import MAX_FORM_BYTES, describable, json_request
from gateway.oauth.server import OAuthResponse
from gateway.oauth.signing_keys import ALGORITHM as ID_TOKEN_ALGORITHM
from gateway.store.oauth import digest

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Pragma", "no-cache")]
# UK OB DCR v3.3 names application/jwt; v3.1 and v3.2 named application/jose.
_JWT_MEDIA_TYPES = frozenset({"application/jwt", "application/jose"})
# Not client metadata: the JWT's own claims (RFC 7519 §4.1), the statement (read on its own), and what the server
# issued (RFC 7592 §2.2).
_NOT_METADATA = frozenset({"iss", "sub", "aud", "iat", "exp", "nbf", "jti", "software_statement",
                           "registration_access_token", "registration_client_uri", "client_id_issued_at",
                           "client_secret_expires_at"})
# Stored beside a registered client's document: the SHA-256 of its registration access token (never the token) and
# the redirect URIs its statement allows (what a PUT without a statement may choose among).
TOKEN_DIGEST = "registration_access_token_sha256"
ALLOWED_REDIRECT_URIS = "software_redirect_uris"


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
class RegistrationRequest:
    """POST /oauth2/register, or GET|PUT|DELETE /oauth2/register/{client_id}, read: a JSON body (`metadata`) or a
    UK OB signed one (`signed`, the compact JWS), the bearer token, the client certificate."""
    method: str
    client_id: str | None
    metadata: dict | None
    signed: str | None
    bearer: str | None
    certificate: ClientCertificate | None
    client: Client | None = None


@dataclass(frozen=True)
class Submission:
    """What a request asks for: the statement it carries, if any (`statement`), the allowance its metadata is judged
    against (that statement, or what the client registered with), the metadata, the signed request's claims."""
    statement: dict | None
    allowance: dict
    metadata: dict
    signed: dict | None = None


class Registration:
    def __init__(self, server) -> None:
        self.server = server
        self.directory = load_directory_keys(server.settings.directory_jwks)

    async def adapt(self, scope, receive, issuer: str, certificate: ClientCertificate | None) -> RegistrationRequest:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        bearer = (auth[7:].strip() or None) if auth[:7].lower() == "bearer " else None
        client_id = scope.get("path_params", {}).get("client_id")
        method = scope["method"]
        if method not in (("GET", "PUT", "DELETE") if client_id is not None else ("POST",)):
            raise InvalidRequestError("Use GET, PUT or DELETE." if client_id is not None else "Use POST.")
        metadata = signed = None
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if method in ("POST", "PUT"):
            if media_type in _JWT_MEDIA_TYPES:
                signed = (await read_body(receive, MAX_FORM_BYTES, scope["headers"])).decode("latin-1").strip()
            elif media_type == "application/json":
                metadata = (await json_request(scope, receive, issuer, certificate)).payload.data
            else:
                raise InvalidRequestError("The body must be application/json (RFC 7591) or application/jwt (UK OB "
                                          "DCR: a JWT the TPP signed).")
        return RegistrationRequest(method, client_id, metadata, signed, bearer, certificate)

    # POST /oauth2/register
    def register(self, request: RegistrationRequest) -> OAuthResponse:
        try:
            return self._register(request)
        except OAuth2Error as error:
            return self.server.handle_error_response(None, error)

    def _register(self, request: RegistrationRequest) -> OAuthResponse:
        if request.certificate is None:
            raise InvalidClientError(status_code=401, description="Registration needs mutual TLS.")
        submission = self._submission(request, request.certificate, registered=None)
        software_id = submission.allowance["software_id"]
        # RFC 7591 §3.2.2: a statement this server does not approve. A disabled or deleted client's software stays
        # refused until an operator enables it (`obgw clients enable`).
        if self.server.clients.software_refused(software_id):
            raise UnapprovedSoftwareStatementError(f"The software {software_id} was disabled or deleted here; "
                                                   "ask the bank to enable it again.")
        client = Client(
            client_id=secrets.token_urlsafe(16), cert_thumbprints=(request.certificate.thumbprint,),
            subject_dn=request.certificate.subject, issuer_dn=request.certificate.issuer,
            created_at=int(time.time()), origin="dcr", **_registered(submission, request.certificate))
        token = secrets.token_urlsafe(32)
        self._use_once(submission)
        self.server.clients.add({**client.to_document(), TOKEN_DIGEST: digest(token),
                                 ALLOWED_REDIRECT_URIS: submission.allowance.get("software_redirect_uris")})
        request.client = client
        return OAuthResponse(201, {**self._describe(client), "registration_access_token": token}, list(_JSON))

    def _submission(self, request: RegistrationRequest, certificate: ClientCertificate,
                    registered: Mapping | None) -> Submission:
        """The request's statement (required unless `registered`, the stored document of the client a PUT updates,
        supplies the allowance) and metadata; a signed request verified on the way (UK OB DCR)."""
        claims: dict | None = None
        statement: dict | None = None
        if request.signed is not None:
            statement, claims = self._signed_request(request.signed)
            sent = claims
        else:
            sent = request.metadata or {}
            if registered is None or "software_statement" in sent:
                statement = self._software_statement(sent.get("software_statement"))
        metadata = {name: value for name, value in sent.items() if name not in _NOT_METADATA}
        allowance = statement if statement is not None else _allowance(registered or {})
        # UK OB DCR: the transport certificate is the software's own (its CN is the software_id), so a statement
        # cannot be registered by another TPP's certificate.
        if common_name(certificate.subject) != allowance["software_id"]:
            raise InvalidSoftwareStatementError("The software_statement's software_id is not the client "
                                                "certificate's common name.")
        return Submission(statement, allowance, metadata, claims)

    def _use_once(self, submission: Submission) -> None:
        """Claimed last, so a request refused for its metadata uses nothing up: the signed request's jti (RFC 7519
        §4.1.7), then the statement's."""
        signed, statement = submission.signed, submission.statement
        if signed is not None and not self.server.clients.claim_statement(
                digest(f"request\n{signed['iss']}\n{signed['jti']}"), _usable_for(signed, FRESH_SECONDS)):
            raise InvalidClientMetadataError("The registration request was used already (its jti): sign a new one.")
        if statement is not None and not self.server.clients.claim_statement(
                digest(f"{statement['iss']}\n{statement['jti']}"), _usable_for(statement, STATEMENT_MAX_AGE)):
            raise InvalidSoftwareStatementError("The software_statement was used already (its jti): get a new one "
                                                "from the directory.")

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

    def _signed_request(self, request: str) -> tuple[dict, dict]:
        """UK OB DCR: (the statement, the request's claims) of a request JWT signed by a key of the statement it
        carries, its iss the statement's software_id, its aud this issuer as a single string, used within
        FRESH_SECONDS of its iat and at most MAX_ASSERTION_SECONDS long (as a client assertion)."""
        try:
            header = jwt.get_unverified_header(request)
            unverified = jwt.decode(request, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidClientMetadataError("The registration request is not a JWT.") from None
        statement = self._software_statement(unverified.get("software_statement"))
        key = registered_key(_software_keys(statement), header)
        if key is None:
            raise InvalidClientMetadataError("The registration request must be signed (PS256 or ES256) by a key of "
                                             "the software statement's software_jwks, named by its kid.")
        issuer = self.server.issuer
        try:
            claims = jwt.decode(request, key, algorithms=[header["alg"]], audience=issuer, leeway=CLOCK_SKEW,
                                options={"require": ["iss", "aud", "iat", "exp", "jti"]})
        except jwt.ExpiredSignatureError:
            raise InvalidClientMetadataError("The registration request has expired (its exp).") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidClientMetadataError(describable(f"The registration request is not valid: {exc}.")) \
                from None
        refusal = _request_refusal(claims, statement["software_id"], issuer)
        if refusal is not None:
            raise InvalidClientMetadataError(f"The registration request is refused: {refusal}.")
        return statement, claims

    def _describe(self, client: Client) -> dict:
        """RFC 7591 §3.2.1 client information response (no secret: FAPI clients have none). A member the client
        has no value for (a client added by `obgw clients add` has no software_id) is left out, never null."""
        information = {
            "client_id": client.client_id, "client_id_issued_at": client.created_at,
            "client_name": client.client_name, "redirect_uris": list(client.redirect_uris),
            "token_endpoint_auth_method": client.auth_methods[0], "grant_types": list(GRANT_TYPES),
            "response_types": ["code"], "scope": " ".join(sorted(client.scopes)), "software_id": client.software_id,
            "software_roles": list(client.roles), "tls_client_auth_subject_dn": client.subject_dn,
            "jwks": dict(client.jwks), "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
            "tls_client_certificate_bound_access_tokens": not client.dpop_bound_access_tokens,
            "id_token_signed_response_alg": ID_TOKEN_ALGORITHM,
            "registration_client_uri": f"{self.server.issuer}/oauth2/register/{client.client_id}",
        }
        return {name: value for name, value in information.items() if value is not None}

    # GET | PUT | DELETE /oauth2/register/{client_id} (RFC 7592)
    def manage(self, request: RegistrationRequest) -> OAuthResponse:
        try:
            client, document, by_registration_token = self._managed_client(request)
            request.client = client
            if request.method == "DELETE":
                self.server.clients.delete(client.client_id, client.software)
                return OAuthResponse(204, "", [("Cache-Control", "no-store")])
            if request.method == "PUT":
                client = self._update(request, client, document)
        except OAuth2Error as error:
            return self.server.handle_error_response(None, error)
        # RFC 7592 §3: the token goes back with the registration; only the one the client presented (never stored).
        issued = {"registration_access_token": request.bearer} if by_registration_token else {}
        return OAuthResponse(200, {**self._describe(client), **issued}, list(_JSON))

    def _update(self, request: RegistrationRequest, client: Client, document: dict) -> Client:
        """RFC 7592 §2.2: the metadata replaced, judged as at registration against the statement the request carries
        (claimed once, as at registration) or, without one, against the one the client registered with."""
        if client.origin != "dcr" or client.software_id is None:
            raise AccessDeniedError(status_code=403, description="This client was registered by the bank's operator: "
                                    "ask the bank to change it.")
        assert request.certificate is not None  # _managed_client matched it
        submission = self._submission(request, request.certificate, registered=document)
        if submission.metadata.get("client_id", client.client_id) != client.client_id:
            raise InvalidClientMetadataError("client_id is not this registration's (RFC 7592 section 2.2).")
        values = _registered(submission, request.certificate)
        self._use_once(submission)
        # Read again just before writing, and only the registered values replaced: what an operator changed meanwhile
        # (a certificate added, the client disabled) is kept, never overwritten.
        current = self.server.clients.get(client.client_id)
        if current is None or current.get("status", "active") != "active":
            raise InvalidTokenError(description="The client is no longer registered or active here.")
        written = dataclasses.replace(Client.from_document(current), **values)
        self.server.clients.replace(
            {**current, **{name: written.to_document()[name] for name in values},
             ALLOWED_REDIRECT_URIS: submission.allowance.get("software_redirect_uris")}, written.software)
        return written

    def _managed_client(self, request: RegistrationRequest) -> tuple[Client, dict, bool]:
        """(the client, its stored document, whether the bearer was its registration access token). RFC 7592 §3:
        the registration access token, or (UK OB DCR) one of the client's own access tokens; either over the
        client's own certificate. An unknown client and a wrong token are the same 401 (RFC 7592 §2.1)."""
        document = self.server.clients.get(request.client_id) if request.client_id else None
        bearer = request.bearer
        if bearer is not None and bearer.count(".") != 2:  # not a JWT: a registration access token (opaque)
            client = Client.from_document(document) if document else None
            stored = document.get(TOKEN_DIGEST) if document else None
            if document is None or client is None or not isinstance(stored, str) \
                    or not hmac.compare_digest(stored, digest(bearer)) \
                    or not client.matches_certificate(request.certificate):
                raise InvalidTokenError(description="Use the client's registration access token over its "
                                        "certificate.")
            if not client.active:  # RFC 7592 §2: a client without permission to manage its record: 403
                raise AccessDeniedError(status_code=403, description="The client is disabled: ask the bank.")
            return client, document, True
        active = self.server.query_client(request.client_id)
        token = self.server.access_token(bearer) if bearer else None
        if (active is None or document is None or token is None or token.revoked
                or token.client_id != active.client_id or not active.matches_certificate(request.certificate)
                or token.claims["cnf"]["x5t#S256"] != getattr(request.certificate, "thumbprint", None)):
            raise InvalidClientError(status_code=401, description="Use the client's certificate and access token.")
        return active, document, False


def _registered(submission: Submission, certificate: ClientCertificate) -> dict[str, Any]:
    """The client's registered values, from the allowance and the metadata that narrows it (RFC 7591 §2.3: the
    statement's values take precedence); what is not allowed is refused, never quietly trimmed."""
    allowance, metadata = submission.allowance, submission.metadata
    software_id = allowance["software_id"]
    if metadata.get("software_id", software_id) != software_id:
        raise InvalidClientMetadataError("software_id is not the software statement's.")
    method = metadata.get("token_endpoint_auth_method")
    if method not in AUTH_METHODS:
        raise InvalidClientMetadataError(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}.")
    allowed_uris = _strings(allowance.get("software_redirect_uris"), "software_redirect_uris")
    redirect_uris = _strings(metadata.get("redirect_uris", allowed_uris), "redirect_uris")
    if not redirect_uris or not set(redirect_uris) <= set(allowed_uris):
        raise InvalidClientMetadataError("redirect_uris must be among the software statement's redirect URIs.")
    if any(not uri.startswith("https://") for uri in redirect_uris):
        raise InvalidClientMetadataError("redirect_uris must be https URLs.")
    roles = _strings(allowance.get("software_roles"), "software_roles")
    if not roles or not set(roles) <= set(ROLES):
        raise InvalidSoftwareStatementError(f"software_roles must be among {', '.join(ROLES)}.")
    for name, allowed in (("grant_types", GRANT_TYPES), ("response_types", ("code",))):
        if not set(_strings(metadata.get(name, list(allowed)), name)) <= set(allowed):
            raise InvalidClientMetadataError(f"{name} must be among {', '.join(allowed)}.")
    algorithms: dict[str, tuple[str, ...]] = {"id_token_signed_response_alg": (ID_TOKEN_ALGORITHM,),
                                              "request_object_signing_alg": ASSERTION_ALGORITHMS,
                                              "token_endpoint_auth_signing_alg": ASSERTION_ALGORITHMS}
    for name, algs in algorithms.items():
        if metadata.get(name, algs[0]) not in algs:
            raise InvalidClientMetadataError(f"{name} must be one of {', '.join(algs)}.")
    scopes = {"openid", *(ROLE_SCOPES[role] for role in roles)}
    if not isinstance(metadata.get("scope", ""), str) or not set(metadata.get("scope", "").split()) <= scopes:
        raise InvalidClientMetadataError(f"scope must be among the software's: {' '.join(sorted(scopes))}.")
    subject_dn = metadata.get("tls_client_auth_subject_dn")
    if subject_dn is not None and subject_dn != certificate.subject:
        raise InvalidClientMetadataError("tls_client_auth_subject_dn is not the presented certificate's subject.")
    # The keys that authenticate the client come only from what the directory signed, so keys sent beside the
    # statement are refused rather than weighed.
    if "jwks" in metadata or "jwks_uri" in metadata:
        raise InvalidClientMetadataError("The client's keys come from the software statement (software_jwks) "
                                         "only: send no jwks or jwks_uri.")
    jwks = _software_keys(allowance)
    if method == "private_key_jwt" and not jwks["keys"]:
        raise InvalidClientMetadataError("private_key_jwt needs the software statement's keys (software_jwks).")
    dpop = metadata.get("dpop_bound_access_tokens", False)  # RFC 9449 §5.2
    if not isinstance(dpop, bool):
        raise InvalidClientMetadataError("dpop_bound_access_tokens must be true or false.")
    return {"client_name": str(allowance.get("software_client_name") or software_id), "roles": tuple(roles),
            "redirect_uris": tuple(redirect_uris), "auth_methods": (method,), "jwks": jwks,
            "software_id": software_id, "dpop_bound_access_tokens": dpop}


def _request_refusal(claims: Mapping, software_id: str, issuer: str) -> str | None:
    """Why a signed registration request's verified claims are not acceptable, if they are not: short-lived and fresh
    as a client assertion must be (client_auth), its iss the software, its aud this issuer alone."""
    if claims["aud"] != issuer:
        return f"its aud must be the issuer {issuer} as a single string"
    if claims["iss"] != software_id:
        return "its iss must be the software statement's software_id"
    if not all(type(claims[name]) in (int, float) for name in ("exp", "iat")):
        return "its exp and iat must be NumericDate values"
    if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= MAX_JTI_CHARS:
        return f"its jti must be a string of 1 to {MAX_JTI_CHARS} characters"
    if claims["exp"] - claims["iat"] > MAX_ASSERTION_SECONDS:
        return f"it may live at most {MAX_ASSERTION_SECONDS} s from its iat"
    now = time.time()
    if not now - FRESH_SECONDS - CLOCK_SKEW <= claims["iat"] <= now + CLOCK_SKEW:
        return f"it must be used within {FRESH_SECONDS} s of its iat"
    return None


def _allowance(document: Mapping) -> dict:
    """What the statement a client registered with allows, as a statement's claims: its own values, and the redirect
    URIs stored beside it (or, where none were, its current ones: a PUT can then only narrow)."""
    client = Client.from_document(document)
    return {"software_id": client.software_id, "software_client_name": client.client_name,
            "software_roles": list(client.roles), "software_jwks": dict(client.jwks),
            "software_redirect_uris": document.get(ALLOWED_REDIRECT_URIS) or list(client.redirect_uris)}


def _software_keys(statement: Mapping) -> dict:
    """The statement's software_jwks: a JWK Set of public keys (the keys that authenticate the client)."""
    jwks = statement.get("software_jwks") or {"keys": []}
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise InvalidSoftwareStatementError("software_jwks must be a JWK Set.")
    if any(not isinstance(k, dict) or _PRIVATE_MEMBERS & set(k) for k in jwks["keys"]):
        raise InvalidSoftwareStatementError("software_jwks must hold public keys only.")
    return jwks


def _usable_for(claims: Mapping, max_age: int) -> int:
    """Seconds from now until a JWT with these claims can no longer be accepted (past its exp, or too old)."""
    until = claims["iat"] + max_age
    if type(claims.get("exp")) in (int, float):
        until = min(until, claims["exp"])
    return int(until + CLOCK_SKEW - time.time()) + 1


def _strings(value, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidClientMetadataError(f"{name} must be a list of strings.")
    return value
