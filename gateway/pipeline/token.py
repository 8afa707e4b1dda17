"""VerifyAccessToken: the access token is ours, unexpired, for this API, and its sender proven: bound to this
certificate, or - for a client registered for DPoP - to the key of the call's DPoP proof.

RFC 6750 §2.1 (bearer header), RFC 9068 §4 (JWT access token validation), RFC 8705 §3 (certificate binding),
RFC 9449 §7 (a DPoP-bound token comes as `Authorization: DPoP` with a proof of its key, never as a Bearer token; the
proof's jti is used once, in Admit's round trip).
Everything here is provable from the signed token, so it runs before any I/O. A token's signature is verified
once per worker and its claims cached until it expires (ECDSA verification costs ~160 µs, FACTS.md); the binding
to the certificate, the scope and the signing key's presence in this worker's key ring are checked on every call,
and revocation - of the token, its grant, or its signing key (`obgw keys revoke`) - is Admit's, live, in Redis.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from gateway.call import CONTINUE, Call, Flow, Stage, required
from gateway.errors import Refusal, token_refusal
from gateway.oauth.dpop import Nonces, ProofError, check_proof
from gateway.oauth.signing_keys import VERIFIER_RELOAD_SECONDS, KeyRing
from gateway.oauth.tokens import (
    GRANT_CLAIM,
    INTENT_CLAIM,
    AccessTokenVerifier,
    TokenRejected,
)
from gateway.store.admission import AdmissionStore

AUTHORIZATION = b"authorization"
DPOP = b"dpop"
CACHE_SIZE = 10_000
KEY_REFRESH_SECONDS = 1.0     # at most one re-read a second on an unknown kid
KEY_RELOAD_SECONDS = VERIFIER_RELOAD_SECONDS  # and one a minute anyway: keys dropped from Redis are dropped here too




class KeyCache:
    """The signing keys as the resource stage knows them; re-read from Redis when a token names an unknown kid."""

    def __init__(self, store: AdmissionStore, overlap: float) -> None:
        self._store, self._overlap = store, overlap
        self._ring = KeyRing({}, overlap)
        self._loaded = float("-inf")
        self._refreshing = asyncio.Lock()

    async def key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        key: ec.EllipticCurvePublicKey | None = self._ring.verification_key(kid)
        if key is not None and time.monotonic() - self._loaded < KEY_RELOAD_SECONDS:
            return key
        # Calls that meet the same new kid at once wait for one re-read instead of being refused meanwhile; an
        # unknown kid causes at most one re-read a second (a TPP sending made-up kids cannot flood Redis).
        async with self._refreshing:
            key = self._ring.verification_key(kid)
            stale = time.monotonic() - self._loaded >= KEY_RELOAD_SECONDS
            if (key is None and time.monotonic() - self._loaded >= KEY_REFRESH_SECONDS) or stale:
                self._ring = KeyRing(await self._store.signing_keys(), self._overlap)
                self._loaded = time.monotonic()
                key = self._ring.verification_key(kid)
        return key


class VerifyAccessToken(Stage):
    def __init__(self, verifier: AccessTokenVerifier, keys: KeyCache, *, consent_bound: bool,
                 scope: str | None = None, origin: str = "", nonces: Nonces | None = None) -> None:
        """`origin`: the gateway's public origin (its issuer URL), what a DPoP proof's htu names; `nonces`: the
        server's DPoP nonces (a proof that carries one must carry a current one)."""
        self._verifier, self._keys = verifier, keys
        self._origin, self._nonces = origin, nonces
        self._consent_bound = consent_bound  # resource calls need a consent's token; consent creation a client's
        self._scope = scope                  # fixed scope, else the route's
        # token → (its kid, verified claims)
        self._cache: OrderedDict[str, tuple[str, Mapping[str, Any]]] = OrderedDict()

    async def on_request(self, call: Call) -> Flow:
        scheme, token = _access_token(call.headers)
        cached = self._cache.get(token)
        if cached is None or cached[1]["exp"] <= time.time():
            kid, claims = await self._verify(token)
        else:
            kid, claims = cached
            # A cached token is only as good as its key: once the key is gone from Redis (revoked, or past its
            # overlap) and this worker has re-read the keys (at most KEY_RELOAD_SECONDS later), it stops here too.
            if await self._keys.key(kid) is None:
                self._cache.pop(token, None)
                raise token_refusal("token.unknown_key")
        cnf = claims["cnf"]
        if "jkt" in cnf:  # RFC 9449 §7.1: only with a proof of the key it is bound to
            if scheme != "dpop":
                raise token_refusal("token.dpop_required")
            call.dpop_jti = self._proven(call, token, cnf["jkt"])
        # RFC 8705 §3.1: the token is only good with the certificate it was issued to.
        elif scheme != "bearer" or cnf.get("x5t#S256") != required(call.certificate, "certificate").thumbprint:
            raise token_refusal("token.cnf_mismatch")
        call.claims, call.key_id, call.client_id = claims, kid, claims["client_id"]
        call.consent_id = claims.get(INTENT_CLAIM)
        if (INTENT_CLAIM in claims and GRANT_CLAIM in claims) != self._consent_bound:
            raise Refusal("token.wrong_grant")
        scope = self._scope or (call.route.scope if call.route else None)
        if scope and scope not in claims["scope"].split():
            raise Refusal("token.insufficient_scope",
                          headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})
        return CONTINUE

    def _proven(self, call: Call, token: str, jkt: str) -> str:
        """The jti of the call's DPoP proof for `token`, once it proves the key `jkt` for this very request."""
        proofs = [v for k, v in call.headers if k == DPOP]
        if len(proofs) != 1:
            raise token_refusal("token.dpop_invalid", "One DPoP header is required.")
        try:
            proof = check_proof(proofs[0].decode("ascii"), call.method, self._origin + call.path,
                                access_token=token, nonces=self._nonces)
        except UnicodeDecodeError:
            raise token_refusal("token.dpop_invalid") from None
        except ProofError as refused:
            if refused.nonce:
                raise token_refusal("token.dpop_nonce", str(refused),
                                    nonce=self._nonces.current() if self._nonces else None) from None
            raise token_refusal("token.dpop_invalid", str(refused)) from None
        if proof.jkt != jkt:
            raise token_refusal("token.dpop_mismatch")
        return proof.jti

    async def _verify(self, token: str) -> tuple[str, Mapping[str, Any]]:
        try:
            kid = self._verifier.kid_of(token)
            claims = self._verifier.verify(token, await self._keys.key(kid))
        except TokenRejected as rejected:
            raise token_refusal(rejected.reason, str(rejected)) from None
        if len(self._cache) >= CACHE_SIZE:
            self._cache.popitem(last=False)
        self._cache[token] = kid, claims
        return kid, claims


def _access_token(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str]:
    """("bearer" | "dpop", the token) of the one Authorization header."""
    values = [v for k, v in headers if k == AUTHORIZATION]
    scheme, _, token = values[0].partition(b" ") if len(values) == 1 else (b"", b"", b"")
    scheme = scheme.lower()
    if scheme not in (b"bearer", b"dpop") or not token.strip():
        raise Refusal("token.missing", headers={"WWW-Authenticate": 'Bearer, DPoP algs="ES256 PS256"'})
    try:
        return scheme.decode(), token.strip().decode("ascii")
    except UnicodeDecodeError:
        raise token_refusal("token.malformed") from None
