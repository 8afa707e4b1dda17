"""Admit: the live state of a consent-bound call, decided in one Redis round trip (`store/scripts/admit.lua`).

The script is the single home of these rules: the token (and its grant) not revoked, the client not disabled, the
consent this TPP's, `Authorised`, not expired (on Redis's clock, to the millisecond) and authorised by the grant the
token came from. Nothing is cached, so a revocation holds from the very next call on every worker. Fail closed:
if Redis cannot answer, nothing is forwarded (503).
"""
from __future__ import annotations

from gateway.errors import Refusal
from gateway.oauth.tokens import GRANT_CLAIM
from gateway.pipeline.call import Call
from gateway.pipeline.token import token_refusal
from gateway.store.admission import AdmissionStore
from gateway.store.redis import RedisError


class Admit:
    def __init__(self, store: AdmissionStore) -> None:
        self._store = store

    async def on_request(self, call: Call) -> None:
        claims = call.claims
        try:
            verdict = await self._store.admit(call.client_id, call.consent_id, claims["jti"], claims[GRANT_CLAIM])
        except (RedisError, OSError):
            raise Refusal("admission.unavailable", headers={"Retry-After": "1"}) from None
        if verdict.reason is not None:
            raise token_refusal(verdict.reason)
        call.customer_id, call.accounts = verdict.customer_id, verdict.accounts


class AdmitClient:
    """The client-credentials counterpart (consent API): the client enabled and the token not revoked."""

    def __init__(self, store: AdmissionStore) -> None:
        self._store = store

    async def on_request(self, call: Call) -> None:
        try:
            active = await self._store.client_active(call.client_id, call.claims["jti"])
        except (RedisError, OSError):
            raise Refusal("admission.unavailable", headers={"Retry-After": "1"}) from None
        if not active:
            raise token_refusal("token.revoked")
