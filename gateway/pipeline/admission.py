"""Admit: everything about a consent-bound call that lives in Redis, decided in one round trip (`admit.lua`).

The script is the single home of these rules, checked in this order: the token (and its grant) not revoked, the
client not disabled, the consent this TPP's, `Authorised` by the grant the token came from, not expired (on Redis's
clock, to the millisecond), the route's permission granted, the account one the customer selected, and - for a call
without the customer present - the unattended allowance (PSD2 RTS Art. 36(5)), charged only for a call that passes
everything else. Nothing is cached, so a revocation holds from the very next call on every worker. Fail closed: if
Redis cannot answer, nothing is forwarded (503).
"""
from __future__ import annotations

import math

from gateway.errors import Refusal
from gateway.oauth.tokens import GRANT_CLAIM
from gateway.pipeline.call import Call
from gateway.pipeline.token import token_refusal
from gateway.policy.fields import Grant, parse_moment
from gateway.policy.model import UnattendedPolicy
from gateway.store.admission import AdmissionStore
from gateway.store.redis import RedisError


CUSTOMER_IP = b"x-fapi-customer-ip-address"  # FAPI: present when the customer is, absent for an unattended call


class Admit:
    def __init__(self, store: AdmissionStore, unattended: UnattendedPolicy) -> None:
        self._store = store
        self._unattended = unattended

    async def on_request(self, call: Call) -> None:
        claims, route = call.claims, call.route
        try:
            verdict = await self._store.admit(
                call.client_id, call.consent_id, claims["jti"], claims[GRANT_CLAIM], permissions=route.permissions,
                account_id=call.path_params.get(route.account_param) if route.account_param else None,
                unattended=not any(k == CUSTOMER_IP for k, _ in call.headers), allowance=self._unattended.calls,
                window_seconds=self._unattended.window_seconds)
        except (RedisError, OSError):
            raise Refusal("admission.unavailable", headers={"Retry-After": "1"}) from None
        if verdict.reason == "consent.unattended_limit":
            raise Refusal(verdict.reason, headers={"Retry-After": str(max(1, math.ceil(verdict.retry_ms / 1000)))})
        if verdict.reason is not None:
            raise token_refusal(verdict.reason)
        call.customer_id = verdict.customer_id
        call.grant = Grant(frozenset(verdict.permissions), frozenset(verdict.accounts),
                           (parse_moment(verdict.window[0]), parse_moment(verdict.window[1])))


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
