"""Tokens: JWT access tokens (RFC 9068) bound to the client certificate (RFC 8705 §3), id_tokens (OIDC Core §2)
carrying `openbanking_intent_id` (UK OB Security Profile), opaque refresh tokens; and access-token verification.

PyJWT does all JWT work of the project (Authlib's joserfc stays inside Authlib). Verification is strict by
construction: one algorithm (ES256, so `none` and HS256-with-the-public-key cannot pass), the `at+jwt` type
(RFC 9068 §4), issuer, audience, expiry, a lifetime no longer than this server issues (so whoever stole a signing
key cannot mint a token that outlives the key's revocation), and every claim the resource stage relies on.
"""
from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

import jwt

from gateway.crypto import b64url
from gateway.oauth.signing_keys import ALGORITHM

if TYPE_CHECKING:
    from gateway.oauth.models import Client, Grantee

ACCESS_TOKEN_TYPE = "at+jwt"
INTENT_CLAIM = "openbanking_intent_id"
GRANT_CLAIM = "obgw_grant"       # the authorisation a token came from; revoking it revokes all its tokens
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub", "client_id", "jti", "scope", "cnf")
# UK OB Security Profile (OIDC `acr` values): `ca` when the customer was authenticated, `sca` only when strong
# customer authentication (PSD2 RTS Art. 4: two independent factors) really happened (Grantee.sca).
ACR_CA = "urn:openbanking:psd2:ca"
ACR_SCA = "urn:openbanking:psd2:sca"
LIFETIME_LEEWAY_SECONDS = 5  # exp - iat may exceed the configured lifetime by this much (settings changed, rounding)




class TokenIssuer:
    def __init__(self, keys, store, issuer: str, audience: str, access_seconds: int, refresh_seconds: int) -> None:
        self._keys, self._store = keys, store
        self.issuer, self.audience = issuer, audience
        self.access_seconds, self.refresh_seconds = access_seconds, refresh_seconds

    def issue(self, client: Client, cnf: dict[str, str], scope: str, grantee: Grantee | None,
              include_refresh_token: bool) -> dict:
        """The token response (RFC 6749 §5.1) for `client`, its access token bound by `cnf`: to a certificate
        (`x5t#S256`, RFC 8705) or to a DPoP key (`jkt`, RFC 9449: then `token_type` DPoP)."""
        signing = self._keys.ring().signing
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": grantee.subject if grantee else client.client_id, "aud": self.audience,
            "client_id": client.client_id, "scope": scope, "iat": now, "nbf": now, "exp": now + self.access_seconds,
            "jti": str(uuid.uuid4()), "cnf": cnf,
        }
        if grantee:
            claims |= {INTENT_CLAIM: grantee.consent_id, GRANT_CLAIM: grantee.grant_id, "auth_time": grantee.auth_time}
        access_token = jwt.encode(claims, signing.private, ALGORITHM, headers={"kid": signing.kid,
                                                                               "typ": ACCESS_TOKEN_TYPE})
        token: dict[str, object] = {"access_token": access_token, "token_type": token_type(cnf),
                                    "expires_in": self.access_seconds, "scope": scope}
        if grantee and "openid" in scope.split():
            id_claims = {
                "iss": self.issuer, "sub": grantee.subject, "aud": client.client_id, "iat": now,
                "exp": now + self.access_seconds, "auth_time": grantee.auth_time,
                "acr": ACR_SCA if grantee.sca else ACR_CA,
                INTENT_CLAIM: grantee.consent_id, "at_hash": at_hash(access_token),
            }
            if grantee.nonce:
                id_claims["nonce"] = grantee.nonce
            token["id_token"] = jwt.encode(id_claims, signing.private, ALGORITHM,
                                           headers={"kid": signing.kid, "typ": "JWT"})
        if grantee and include_refresh_token:
            refresh = secrets.token_urlsafe(32)
            exp = now + self.refresh_seconds
            self._store.save_refresh_token(client.client_id, refresh, {
                "client_id": client.client_id, "cnf": cnf, "scope": scope, "consent_id": grantee.consent_id,
                "subject": grantee.subject, "grant_id": grantee.grant_id,
                "auth_time": grantee.auth_time, "sca": grantee.sca, "exp": exp}, exp - now)
            token["refresh_token"] = refresh
        return token


class TokenRejected(Exception):
    """The token cannot be used; `reason` is the catalogued reason id (errors.REASONS)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class AccessTokenVerifier:
    def __init__(self, issuer: str, audience: str, max_lifetime: int) -> None:
        """`max_lifetime`: the access-token lifetime this server issues (OBGW_ACCESS_TOKEN_SECONDS)."""
        self.issuer, self.audience, self.max_lifetime = issuer, audience, max_lifetime

    def kid_of(self, token: str) -> str:
        """The key id of a token that is shaped like ours; TokenRejected for anything else."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:  # not a JWT, or a header PyJWT refuses (a kid that is not a string, unknown crit)
            raise TokenRejected("token.malformed", "The access token is not a JWT.") from None
        # RFC 8725 §3.1: only the algorithm we sign with; `none`, HS256 (with our public key as the secret) and
        # every other algorithm are refused before any key is used.
        if header.get("alg") != ALGORITHM:
            raise TokenRejected("token.bad_signature", f"The access token is not signed with {ALGORITHM}.")
        # RFC 9068 §4: the resource server MUST verify that the typ header is at+jwt (an id_token is not one).
        if str(header.get("typ", "")).lower() not in (ACCESS_TOKEN_TYPE, "application/" + ACCESS_TOKEN_TYPE):
            raise TokenRejected("token.malformed", "The token is not an access token (typ at+jwt).")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenRejected("token.unknown_key", "The access token names no signing key.")
        return kid

    def verify(self, token: str, key) -> Mapping:
        """The claims of a token signed by `key` (the key its kid names), or TokenRejected."""
        if key is None:
            raise TokenRejected("token.unknown_key", "The access token is signed by a key this server does not have.")
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=self.audience, issuer=self.issuer,
                                options={"require": list(REQUIRED_CLAIMS)})
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token.expired", "The access token has expired.") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("token.bad_signature", "The access token's signature is not valid.") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise TokenRejected("token.wrong_audience", "The access token was not issued for this API.") from None
        except jwt.InvalidTokenError as exc:
            raise TokenRejected("token.malformed", f"The access token is not valid: {exc}.") from None
        # PyJWT has refused an iat in the future, so this also bounds how far ahead exp can be.
        if int(claims["exp"]) - int(claims["iat"]) > self.max_lifetime + LIFETIME_LEEWAY_SECONDS:
            raise TokenRejected("token.too_long_lived",
                                f"The access token lives longer than the {self.max_lifetime} s this server issues.")
        cnf = claims.get("cnf")
        if not isinstance(cnf, dict) or not any(isinstance(cnf.get(name), str) for name in ("x5t#S256", "jkt")):
            raise TokenRejected("token.malformed", "The access token is bound neither to a certificate nor a key.")
        return claims


def token_type(cnf: Mapping[str, str]) -> str:
    """RFC 9449 §5: a DPoP-bound token is of type DPoP; a certificate-bound one is a Bearer token (RFC 8705)."""
    return "DPoP" if "jkt" in cnf else "Bearer"


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: base64url of the left half of the SHA-256 of the access token (ES256's hash)."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])
