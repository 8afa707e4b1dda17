"""Admit: everything about a consent-bound call that lives in Redis, decided in one round trip (`admit.lua`).

The script is the single home of these rules, checked in this order: the TPP's rate limit (GCRA, exact across
workers; every call that reaches it counts), the token (and its grant) not revoked, the
client not disabled, the consent this TPP's, `Authorised` by the grant the token came from, not expired (on Redis's
clock, to the millisecond), the route's permission granted, the account one the customer selected, and - for a call
without the customer present - the unattended allowance (PSD2 RTS Art. 36(5)), charged only for a call that passes
everything else. Nothing is cached, so a revocation holds from the very next call on every worker. Fail closed: if
Redis cannot answer, nothing is forwarded (503). The consent's customer id comes back sealed (audit/customers.py) and
is opened here, once per consent and worker, for Forward (`x-bank-customer-id`) and the audit's `subject`.

Metering (issue 20) rides on the same round trip: the script counts the call under its API product and UTC month,
its refusal or (at once, provisionally) its billing, and refuses a call over the plan's monthly quota. What it cannot
know is settled afterwards, off the hot path: a call the bank did not answer 2xx, or that a later stage refused,
has its billing taken back (`Admit.on_response`/`on_abort`); a call refused before Admit is counted by `Meter`.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

from gateway.call import CONTINUE, Call, Flow, Stage, required
from gateway.errors import Refusal
from gateway.oauth.dpop import REPLAY_SECONDS
from gateway.oauth.tokens import GRANT_CLAIM
from gateway.policy.fields import Entitlement, parse_moment
from gateway.policy.model import Plans, UnattendedPolicy
from gateway.ratelimit import RateLimitArgs, conclude
from gateway.store.admission import AdmissionStore, Metering
from gateway.store.consents import CustomerIds
from gateway.store.redis import RedisError

CUSTOMER_IP = b"x-fapi-customer-ip-address"  # FAPI: present when the customer is, absent for an unattended call
log = logging.getLogger("obgw.usage")


class UsageMeter:
    """What a call is metered as (its route's product, the UTC month of its arrival, the product's quotas), built once
    per route and month; and the settling writes, which never fail a call (the audit log still has it; `obgw usage
    reconcile` shows any difference)."""

    def __init__(self, store: AdmissionStore, plans: Plans) -> None:
        self._store = store
        self._plans = plans
        self._by_route: dict[tuple[str, str], Metering] = {}

    def of(self, call: Call) -> Metering:
        route, month = call.routed, call.ts[:7]  # ts: ISO 8601 in UTC, as the audit record's
        metering = self._by_route.get((route.id, month))
        if metering is None:
            if len(self._by_route) > 10_000:  # months go by; routes are few
                self._by_route.clear()
            metering = self._by_route[(route.id, month)] = Metering(
                route.product, month, self._plans.default_plan, self._plans.quota_args(route.product))
        return metering

    async def settle(self, call: Call, *, calls: int = 0, billable: int = 0, reason: str | None = None) -> None:
        try:
            await self._store.settle(call.tpp, self.of(call), calls=calls, billable=billable, reason=reason)
        except (RedisError, OSError):
            log.warning("could not meter interaction %s (%s)", call.interaction_id, reason or call.status)


_REDIS_DOWN = frozenset(("admission.unavailable", "store.unavailable"))


def _audited_reason(reason: str) -> str:
    """The reason the audit record will name: a fault after the bank was called is rendered `error.unexpected`."""
    return "error.unexpected" if reason == "backend.unanswered" else reason


class Meter(Stage):
    """Counts the calls Admit's script never saw (refused before it, or an idempotent replay): after MatchRoute, so a
    call is metered only when it names a route, and only once its TPP is known (the access token)."""

    def __init__(self, usage: UsageMeter) -> None:
        self._usage = usage

    async def on_response(self, call: Call) -> None:
        if not call.metered and call.client_id is not None:  # a replay: billed as the answer it repeats
            await self._usage.settle(call, calls=1, billable=1 if 200 <= call.answer.status < 300 else 0)

    async def on_abort(self, call: Call, refusal: Refusal) -> None:
        # Redis just failed this call: no second try that would only slow the refusal down (reconcile shows it).
        if not call.metered and call.client_id is not None and refusal.reason not in _REDIS_DOWN:
            await self._usage.settle(call, calls=1, reason=_audited_reason(refusal.reason))


class Admit(Stage):
    def __init__(self, store: AdmissionStore, unattended: UnattendedPolicy, rate: RateLimitArgs,
                 customers: CustomerIds, usage: UsageMeter | None = None) -> None:
        self._store = store
        self._unattended = unattended
        self._rate = rate
        self._customers = customers
        self._usage = usage

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
                claims_consent=route.uses_consent, dpop=_dpop(call),
                **({"usage": self._usage.of(call)} if self._usage is not None else {}))
        except (RedisError, OSError):
            raise Refusal("admission.unavailable", headers={"Retry-After": "1"}) from None
        call.metered = self._usage is not None
        if verdict.customer_id:  # refused too, when the consent was this TPP's: whose data it was
            call.customer_id = self._customers.reveal(consent_id, verdict.customer_id)
        conclude(call, verdict)
        call.payment_claim = verdict.claim
        call.entitlement = Entitlement(frozenset(verdict.permissions), frozenset(verdict.accounts),
                                       (parse_moment(verdict.window[0]), parse_moment(verdict.window[1])),
                                       instructed_amount=verdict.instructed_amount)
        return CONTINUE

    async def on_response(self, call: Call) -> None:
        if self._usage is not None and not 200 <= call.answer.status < 300:  # not billable: take it back
            await self._usage.settle(call, billable=-1)

    async def on_abort(self, call: Call, refusal: Refusal) -> None:
        if self._usage is not None:  # a later stage refused (or failed): counted as that refusal, not billed
            await self._usage.settle(call, billable=-1, reason=_audited_reason(refusal.reason))


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
