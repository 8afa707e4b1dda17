"""DPoP proofs (RFC 9449): the sender constraint FAPI 2.0 allows beside mutual TLS. A client registered with
`dpop_bound_access_tokens` gets tokens bound to the public key of its proofs (`cnf.jkt`, the RFC 7638 thumbprint)
and proves, on the token endpoint and on every resource call, that it holds the private key.

`check_proof` makes the checks of RFC 9449 §4.3 that need no storage: one proof, a JWT typed `dpop+jwt`, signed with
ES256 or PS256 by the public JWK in its header (no private members), `htm` the request's method, `htu` its URL
without query and fragment, `iat` within the window, a `jti`, the `ath` of the access token when there is one, and
a server nonce when one is required or given. Whether the `jti` was seen before is the caller's: it is one write in
Redis, made with the call's other writes (admit.lua on resource calls, the authorization store on the token endpoint),
so a proof is accepted once across every worker.

Server nonces (§8, §9) are stateless: the HMAC of the current time window under a key every node derives from the
same secret, so any worker accepts a nonce any other issued, for this window and the one before.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import cast

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, RSAPSSAlgorithm
from jwt.types import Options

from gateway.crypto import b64url, jwk_thumbprint

HEADER = "dpop"
NONCE_HEADER = "DPoP-Nonce"
TYP = "dpop+jwt"
ALGORITHMS: dict[str, tuple[str, type[ECAlgorithm] | type[RSAPSSAlgorithm]]] = {
    "ES256": ("EC", ECAlgorithm), "PS256": ("RSA", RSAPSSAlgorithm)}
PAST_SECONDS = 300             # a proof's iat may be this old ...
FUTURE_SECONDS = 30            # ... or this far ahead (clock skew)
REPLAY_SECONDS = PAST_SECONDS + FUTURE_SECONDS  # how long a jti is remembered: as long as its proof is acceptable
MAX_JTI_CHARS = 256
PublicKey = EllipticCurvePublicKey | RSAPublicKey
_SIGNATURE_ONLY: Options = {"verify_aud": False, "verify_exp": False, "verify_iat": False, "verify_nbf": False}
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class ProofError(Exception):
    """The proof is refused; `nonce` says the client should retry with the server's nonce (use_dpop_nonce)."""

    def __init__(self, description: str, nonce: bool = False) -> None:
        super().__init__(description)
        self.nonce = nonce


@dataclass(frozen=True, slots=True)
class Proof:
    jkt: str    # the thumbprint of the proof's key: what a bound token's cnf.jkt names
    jti: str


class Nonces:
    """Server-issued DPoP nonces: valid for the window they were issued in and the next."""

    def __init__(self, key: bytes, window_seconds: int = 300) -> None:
        self._key, self._window = key, window_seconds

    def current(self, now: float | None = None) -> str:
        return self._at(int((now or time.time()) // self._window))

    def valid(self, nonce: str, now: float | None = None) -> bool:
        window = int((now or time.time()) // self._window)
        return any(hmac.compare_digest(nonce, self._at(w)) for w in (window, window - 1))

    def _at(self, window: int) -> str:
        return b64url(hmac.new(self._key, str(window).encode(), hashlib.sha256).digest()[:18])


def access_token_hash(token: str) -> str:
    """`ath` (§4.2): base64url of the SHA-256 of the access token's ASCII."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def check_proof(proof: str, method: str, url: str, *, access_token: str | None = None, nonces: Nonces | None = None,
                nonce_required: bool = False, now: float | None = None) -> Proof:
    """The proof of possession for a `method` request to `url` (scheme, host and path: what the client addressed);
    with `access_token`, a resource call's proof must carry its `ath`."""
    now = time.time() if now is None else now
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError:
        raise ProofError("The DPoP proof is not a JWT.") from None
    if header.get("typ") != TYP:
        raise ProofError(f"The DPoP proof's typ must be {TYP}.")
    kind = ALGORITHMS.get(header.get("alg", ""))
    jwk = header.get("jwk")
    if kind is None or not isinstance(jwk, dict) or jwk.get("kty") != kind[0] or _PRIVATE & set(jwk):
        raise ProofError(f"The DPoP proof must be signed with {' or '.join(ALGORITHMS)} by the public jwk it carries.")
    try:
        key = cast(PublicKey, kind[1].from_jwk(dict(jwk)))  # no private members: a public key
        claims = jwt.decode(proof, key, algorithms=[header["alg"]], options=_SIGNATURE_ONLY)  # the claims: below
        thumbprint = jwk_thumbprint(jwk)
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        raise ProofError("The DPoP proof does not verify with its jwk.") from None
    if claims.get("htm") != method or claims.get("htu") != url:
        raise ProofError(f"The DPoP proof is for another request (htm {method}, htu {url} expected).")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or not (
            now - PAST_SECONDS <= iat <= now + FUTURE_SECONDS):
        raise ProofError(f"The DPoP proof's iat must be within {PAST_SECONDS} s of now.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
        raise ProofError(f"The DPoP proof's jti must be a string of 1 to {MAX_JTI_CHARS} characters.")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise ProofError("The DPoP proof's ath is not the hash of the access token it comes with.")
    if nonces is not None and ("nonce" in claims or nonce_required):
        if not isinstance(claims.get("nonce"), str) or not nonces.valid(claims["nonce"], now):
            raise ProofError("Use the server's DPoP nonce.", nonce=True)
    return Proof(thumbprint, jti)
