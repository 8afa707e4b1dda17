"""Request objects (RFC 9101) pushed through PAR: the authorization request as a JWT signed by the TPP's registered
key, as UK Open Banking (FAPI 1.0 Advanced) clients send it and FAPI 2.0 Message Signing allows.

Checked as FAPI says (FAPI 1.0 Advanced §5.2.2-1, -13, -15, -17; FAPI 2.0 Message Signing §5.3.1): signed with PS256
or ES256 by a key of the client's registered JWKS (`none` and unknown keys refused), `iss` and `client_id` the
authenticated client, `aud` the gateway's issuer, `exp` and `nbf` present, at most 60 minutes apart, `nbf` no more
than 60 minutes ago. The authorization request is then the object's claims alone (RFC 9101 §6.3): parameters sent
beside it are not used.

The consent to authorise may come as obgw's `consent_id` or, as UK OB clients send it, as the essential claim
`claims.id_token.openbanking_intent_id.value` (or the userinfo one), in a request object or a plain `claims`
parameter (`with_intent`); named twice, the two must agree.

Authlib's RFC 9101 extension verifies the signature and `client_id` only, at the authorization endpoint; obgw takes
request objects at PAR alone and needs the FAPI checks above, with the same key selection as client assertions.
"""
from __future__ import annotations

import time
from typing import Any

import jwt
import orjson
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc9101.errors import InvalidRequestObjectError

from gateway.oauth.client_auth import ASSERTION_ALGORITHMS, CLOCK_SKEW, registered_key
from gateway.oauth.requests import describable

ALGORITHMS = ASSERTION_ALGORITHMS          # PS256, ES256
MAX_LIFETIME = 3600                        # exp - nbf, and how far back nbf may lie (FAPI: 60 minutes)
INTENT_CLAIM = "openbanking_intent_id"
_JWT_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})  # about the object, not the request


def _refuse(description: str) -> InvalidRequestObjectError:
    return InvalidRequestObjectError(description=describable(description))


def authorization_parameters(request_object: str, client, issuer: str) -> dict[str, str]:
    """The authorization request the signed `request_object` carries, as form parameters; or invalid_request_object."""
    try:
        header = jwt.get_unverified_header(request_object)
    except jwt.PyJWTError:
        raise _refuse("The request object is not a JWT.") from None
    if header.get("alg") not in ALGORITHMS:
        raise _refuse(f"The request object must be signed with {' or '.join(ALGORITHMS)}.")
    key = registered_key(client.jwks, header)
    if key is None:
        raise _refuse("The request object is signed by a key the client has not registered.")
    try:
        claims = jwt.decode(request_object, key, algorithms=[header["alg"]], audience=issuer, issuer=client.client_id,
                            options={"require": ["iss", "aud", "exp", "nbf"]}, leeway=CLOCK_SKEW)
    except jwt.ExpiredSignatureError:
        raise _refuse("The request object has expired.") from None
    except jwt.InvalidAudienceError:
        raise _refuse(f"The request object's aud must be the issuer {issuer}.") from None
    except jwt.InvalidIssuerError:
        raise _refuse("The request object's iss must be the client_id.") from None
    except jwt.InvalidTokenError as exc:
        raise _refuse(f"The request object is not valid: {exc}.") from None
    if claims.get("client_id") != client.client_id:
        raise _refuse("The request object's client_id must be the authenticated client.")
    if claims["exp"] - claims["nbf"] > MAX_LIFETIME or claims["nbf"] < time.time() - MAX_LIFETIME - CLOCK_SKEW:
        raise _refuse(f"The request object may live at most {MAX_LIFETIME} s, from an nbf at most that long ago.")
    if "request" in claims or "request_uri" in claims:
        raise _refuse("A request object may not carry request or request_uri.")
    return {name: _parameter(name, value) for name, value in claims.items() if name not in _JWT_CLAIMS}


def with_intent(parameters: dict[str, str]) -> dict[str, str]:
    """`parameters` with `consent_id` taken from the UK OB intent claim of `claims` (OIDC Core §5.5: the id_token or
    userinfo member's `openbanking_intent_id.value`), if it names one; named twice, the two must agree."""
    if "claims" not in parameters:
        return parameters
    try:
        requested = orjson.loads(parameters["claims"])
    except orjson.JSONDecodeError:
        raise InvalidRequestError("claims must be a JSON object (OIDC Core §5.5).") from None
    intent = _intent(requested)
    if intent is None:
        return parameters
    if parameters.get("consent_id", intent) != intent:
        raise InvalidRequestError(f"consent_id and the {INTENT_CLAIM} claim name different consents.")
    return {**parameters, "consent_id": intent}


def _parameter(name: str, value: Any) -> str:
    """A claim as the form parameter it stands for: strings as they are, `claims` as JSON, numbers (max_age) as
    decimal text; anything else is not an authorization request parameter."""
    if isinstance(value, str):
        return value
    if name == "claims" and isinstance(value, dict):
        return orjson.dumps(value).decode()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _refuse(f"The request object's {name} is not a parameter value.")


def _intent(requested: object) -> str | None:
    """The UK OB intent id among the requested claims, if any."""
    if not isinstance(requested, dict):
        raise InvalidRequestError("claims must be a JSON object (OIDC Core §5.5).")
    values = {member[INTENT_CLAIM].get("value") for member in requested.values()
              if isinstance(member, dict) and isinstance(member.get(INTENT_CLAIM), dict)}
    values.discard(None)
    if len(values) > 1 or not all(isinstance(value, str) for value in values):
        raise InvalidRequestError(f"The {INTENT_CLAIM} claims must name one consent, as a string.")
    return values.pop() if values else None
