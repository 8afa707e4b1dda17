"""Admit: everything about a consent-bound call that lives in Redis, decided in one round trip (`admit.lua`).

The script is the single home of these rules, checked in this order: the TPP's rate limit (GCRA, exact across
workers; every call that reaches it counts), the token (and its grant) not revoked, the
client not disabled, the consent this TPP's, `Authorised` by the grant the token came from, not expired (on Redis's
clock, to the millisecond), the route's permission granted, the account one the customer selected, and - for a call
without the customer present - the unattended allowance (PSD2 RTS Art. 36(5)), charged only for a call that passes
everything else. Nothing is cached, so a revocation holds from the very next call on every worker. Fail closed: if
Redis cannot answer, nothing is forwarded (503). The consent's customer id comes back sealed (audit/customers.py) and
is opened here, once per consent and worker, for Forward (`x-bank-customer-id`) and the audit's `subject`.
"""
from __future__ import annotations

from collections.abc import Mapping

from gateway.call import CONTINUE, Call, Flow, Stage, required
from gateway.errors import Refusal
from gateway.oauth.dpop import REPLAY_SECONDS
from gateway.oauth.tokens import GRANT_CLAIM
from gateway.policy.fields import Entitlement, parse_moment
from gateway.policy.model import UnattendedPolicy
from gateway.ratelimit import RateLimitArgs, conclude
from gateway.store.admission import AdmissionStore
from gateway.store.consents import CustomerIds
from gateway.store.redis import RedisError

CUSTOMER_IP = b"x-fapi-customer-ip-address"  # FAPI: present when the customer is, absent for an unattended call


class Admit(Stage):
    def __init__(self, store: AdmissionStore, unattended: UnattendedPolicy, rate: RateLimitArgs,
                 customers: CustomerIds) -> None:
        self._store = store
        self._unattended = unattended
        self._rate = rate
        self._customers = customers

    async def on_request(self, call: Call) -> Flow:
        claims, route = required(call.claims, "claims"), call.routed
        consent_id = required(call.consent_id, "consent_id")
        # PSD2 RTS Art. 36(5) limits account information: routes that read consented data.
        call.unattended = bool(route.permissions) and not any(k == CUSTOMER_IP for k, _ in call.headers)
        try:
            verdict = await self._store.admit(
                call.tpp, consent_id, claims["jti"], claims[GRANT_CLAIM],
                self._rate(route.id), kid=required(call.key_id, "key_id"), permissions=route.permissions,
                account_id=call.path_params.get(route.account_param) if route.account_param else None,
                unattended=call.unattended,
                allowance=self._unattended.calls, window_seconds=self._unattended.window_seconds,
                payment_digest=call.payment_digest, allows_consumed=route.allows_consumed,
                claims_consent=route.uses_consent, dpop=_dpop(call))
        except (RedisError, OSError):
            raise Refusal("admission.unavailable", headers={"Retry-After": "1"}) from None
        if verdict.customer_id:  # refused too, when the consent was this TPP's: whose data it was
            call.customer_id = self._customers.reveal(consent_id, verdict.customer_id)
        conclude(call, verdict)
        call.payment_claim = verdict.claim
        call.entitlement = Entitlement(frozenset(verdict.permissions), frozenset(verdict.accounts),
                                       (parse_moment(verdict.window[0]), parse_moment(verdict.window[1])),
                                       instructed_amount=verdict.instructed_amount)
        return CONTINUE


class AdmitClient(Stage):
    """The client-credentials counterpart (consent API): the rate limit, the client enabled, the token not revoked.

    `route_ids` names the gateway's own route of each method (model.GATEWAY_ROUTE_IDS), for its rate-limit group.
    """

    def __init__(self, store: AdmissionStore, rate: RateLimitArgs, route_ids: Mapping[str, str]) -> None:
        self._store = store
        self._rate = rate
        self._route_ids = route_ids

    async def on_request(self, call: Call) -> Flow:
        route_id = self._route_ids.get(call.method)
        if route_id is None:
            raise Refusal("route.method_not_allowed", headers={"Allow": ", ".join(sorted(self._route_ids))})
        try:
            verdict = await self._store.admit_client(call.tpp, required(call.claims, "claims")["jti"],
                                                     self._rate(route_id), kid=required(call.key_id, "key_id"),
                                                     dpop=_dpop(call))
        except (RedisError, OSError):
            raise Refusal("admission.unavailable", headers={"Retry-After": "1"}) from None
        conclude(call, verdict)
        return CONTINUE


def _dpop(call: Call) -> tuple[str, int] | None:
    """The call's DPoP proof as the scripts take it: its jti, remembered as long as the proof could be accepted."""
    return (call.dpop_jti, REPLAY_SECONDS * 1000) if call.dpop_jti is not None else None
