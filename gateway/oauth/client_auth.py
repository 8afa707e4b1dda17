"""Client authentication: `tls_client_auth` (RFC 8705 §2.1) and `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9).

FAPI 1 Advanced §5.2.2-14 allows only these two; `client_secret_*` and `none` are not registered at all, and a
request that carries a secret is refused outright. Either way the mutual-TLS certificate must be the one registered
for the client (RFC 8705 §3: the tokens will be bound to it), so a stolen assertion is useless without the key of
the certificate too.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

import jwt
from authlib.oauth2.rfc6749 import InvalidClientError
from jwt.algorithms import ECAlgorithm, RSAPSSAlgorithm

from gateway.oauth.requests import describable

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("ES256", "PS256")          # FAPI 1 Advanced §8.6
# "Short lifetime": an assertion is accepted only within 5 minutes of its iat, whatever its exp says, and its exp may
# be at most an hour after iat (the default of common client libraries, Authlib's included). Its jti is remembered
# until the assertion can no longer be accepted (its exp, or 5 minutes after its iat, whichever is first), so replay
# never works and the replay store holds a jti for at most FRESH_SECONDS + 2 x CLOCK_SKEW.
FRESH_SECONDS = 300
MAX_ASSERTION_SECONDS = 3600
CLOCK_SKEW = 30
# What one client may keep in the replay store: a jti is at most 256 characters (it is stored as its SHA-256 anyway),
# and at most 100,000 of a client's jtis are remembered at once (~280 assertions a second, sustained, for 6 minutes;
# the next one is refused until the oldest is forgotten), so no TPP can grow Redis without bound.
MAX_JTI_CHARS = 256
MAX_LIVE_JTIS = 100_000


def _refuse(description: str) -> InvalidClientError:
    # RFC 6749 §5.2: invalid_client, 401 when the client tried to authenticate.
    return InvalidClientError(status_code=401, description=description)


def _no_secrets(request) -> None:
    if "client_secret" in request.form or request.headers.get("authorization", "").lower().startswith("basic "):
        raise _refuse("Client secrets are not accepted: use tls_client_auth or private_key_jwt.")


def _registered(query_client, client_id: str | None, method: str):
    if not client_id:
        raise _refuse("client_id is required.")
    client = query_client(client_id)
    if client is None:
        raise _refuse("Unknown or disabled client.")
    if method not in client.auth_methods:
        raise _refuse(f"The client is not registered for {method}.")
    return client


def _certificate_matches(client, request) -> None:
    if request.certificate is None:
        raise _refuse("A client certificate is required (mutual TLS).")
    if not client.matches_certificate(request.certificate):
        raise _refuse("The client certificate is not the one registered for this client.")


class TlsClientAuth:
    """RFC 8705 §2.1: the client is the holder of its registered certificate; it sends only its client_id."""

    name = "tls_client_auth"

    def __call__(self, query_client, request):
        _no_secrets(request)
        if "client_assertion" in request.form or "client_assertion_type" in request.form:
            return None  # a private_key_jwt request: that method decides
        client = _registered(query_client, request.form.get("client_id"), self.name)
        _certificate_matches(client, request)
        return client


class PrivateKeyJwt:
    """RFC 7523 §3 checks of the client assertion, with its key from the client's registered JWKS."""

    name = "private_key_jwt"

    def __init__(self, issuer: str, store) -> None:
        self.issuer = issuer
        self._store = store

    def __call__(self, query_client, request):
        _no_secrets(request)
        assertion = request.form.get("client_assertion")
        if assertion is None and "client_assertion_type" not in request.form:
            return None  # not an assertion request: tls_client_auth decides
        if request.form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
            raise _refuse(f"client_assertion_type must be {ASSERTION_TYPE} with a client_assertion.")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _refuse("The client assertion is not a JWT.") from None
        # RFC 7523 §3 item 2: sub (and, for client authentication, iss) is the client_id.
        client_id = unverified.get("sub")
        if unverified.get("iss") != client_id or (request.form.get("client_id") not in (None, client_id)):
            raise _refuse("The assertion's iss and sub must both be the client_id.")
        client = _registered(query_client, client_id, self.name)
        _certificate_matches(client, request)
        key = registered_key(client.jwks, header)
        if key is None:
            raise _refuse("The assertion is signed by a key the client has not registered.")
        try:
            # RFC 7523 §3 item 3: aud identifies the authorization server; FAPI: its issuer identifier.
            claims = jwt.decode(assertion, key, algorithms=[header.get("alg")], audience=self.issuer,
                                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]}, leeway=CLOCK_SKEW)
        except jwt.ExpiredSignatureError:
            raise _refuse("The client assertion has expired.") from None
        except jwt.InvalidAudienceError:
            raise _refuse(f"The client assertion's aud must be the issuer {self.issuer}.") from None
        except jwt.InvalidTokenError as exc:
            raise _refuse(describable(f"The client assertion is not valid: {exc}.")) from None
        # FAPI 2.0 Security Profile §5.3.2.1 and RFC 7523bis (draft-ietf-oauth-rfc7523bis §4, the audience-injection
        # fix): aud is the issuer identifier as a single string; an array (which PyJWT accepts) is refused.
        if claims["aud"] != self.issuer:
            raise _refuse(f"The client assertion's aud must be the issuer {self.issuer} as a single string.")
        if not all(type(claims[name]) in (int, float) for name in ("exp", "iat")):
            raise _refuse("The assertion's exp and iat must be NumericDate values (RFC 7519 §2).")
        # RFC 7519 §4.1.7: jti is a string; bounded, so that no client can make the replay store hold long values.
        if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= MAX_JTI_CHARS:
            raise _refuse(f"The assertion's jti must be a string of 1 to {MAX_JTI_CHARS} characters.")
        now = time.time()
        if claims["exp"] - claims["iat"] > MAX_ASSERTION_SECONDS:
            raise _refuse(f"The client assertion may live at most {MAX_ASSERTION_SECONDS} s from its iat.")
        if not now - FRESH_SECONDS - CLOCK_SKEW <= claims["iat"] <= now + CLOCK_SKEW:
            raise _refuse(f"The client assertion must be used within {FRESH_SECONDS} s of its iat.")
        # RFC 7523 §3 item 7: the authorization server may refuse a jti it has seen; we always do, for as long as the
        # assertion could be accepted at all.
        usable_until = min(claims["exp"], claims["iat"] + FRESH_SECONDS) + CLOCK_SKEW
        claimed = self._store.claim_jti(client_id, claims["jti"], int(usable_until - now) + 1, MAX_LIVE_JTIS)
        if claimed == "used":
            raise _refuse("The client assertion's jti has been used already.")
        if claimed != "claimed":
            raise _refuse("The client has too many client assertions in use; try again in a few minutes.")
        return client


def registered_key(jwks: Mapping, header: Mapping):
    """The public key the header names (by kid; without one, the only key), for an allowed algorithm."""
    alg = header.get("alg")
    if alg not in ASSERTION_ALGORITHMS:
        return None
    candidates = [k for k in jwks.get("keys", []) if k.get("use", "sig") == "sig"]
    kid = header.get("kid")
    chosen = [k for k in candidates if k.get("kid") == kid] if kid else (candidates if len(candidates) == 1 else [])
    if len(chosen) != 1 or chosen[0].get("alg", alg) != alg:
        return None
    jwk = chosen[0]
    try:
        if alg == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            return ECAlgorithm.from_jwk(dict(jwk))
        if alg == "PS256" and jwk.get("kty") == "RSA":
            return RSAPSSAlgorithm.from_jwk(dict(jwk))
    except (jwt.InvalidKeyError, ValueError, KeyError):
        return None
    return None
