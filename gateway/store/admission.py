"""AdmissionStore: the hot path's Redis access (async): the one Admit round trip, and the signing keys it may need.

Callers: `pipeline.admission.Admit` (every resource call), `pipeline.token.VerifyAccessToken` (on an unknown kid).
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.store import names
from gateway.store.oauth import digest
from gateway.store.redis import WorkerRedis, async_script, text


@dataclass(frozen=True, slots=True)
class RateState:
    """The TPP's bucket after this call, as the RateLimit headers tell it (IETF httpapi rate-limit headers)."""
    policy: str        # "" when the tier is unlimited: no headers then
    quota: int         # q: the burst
    window: int        # w: seconds to refill the whole quota
    remaining: int     # r
    reset: int         # t: seconds until the quota is whole again


@dataclass(frozen=True, slots=True)
class RateArgs:
    """What the scripts need of the rate policy for one route (built once per route, see pipeline.admission)."""
    group: str
    default_tier: str
    limits: str        # "tier rate burst;..." (rate 0: unlimited)


UNLIMITED = RateArgs("default", "unlimited", "unlimited 0 0")  # no rate limit (tests of the other rules)
USAGE_TTL_SECONDS = 400 * 86_400  # a month's usage outlives its statement and reconciliation (admit.lua says so too)


@dataclass(frozen=True, slots=True)
class Metering:
    """What admit.lua meters a call as: its API product, its UTC month (`YYYY-MM`, of the call's arrival, as the audit
    record's `ts`), and the product's monthly quota per plan (`plan quota;...`, 0: none; `Plans.quota_args`)."""
    product: str
    month: str
    default_plan: str = "standard"
    quotas: str = ""


UNMETERED = Metering("unmetered", "0000-00")  # tests of the other rules


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str | None                 # None: admitted
    retry_ms: int | None = None        # ratelimit.exceeded / consent.unattended_limit: until a call may pass
    customer_id: str | None = None
    accounts: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    window: tuple[str | None, str | None] = (None, None)
    instructed_amount: str = ""        # a payment consent's "<Amount> <Currency>"
    rate: RateState | None = None
    claim: str | None = None           # a payment: the claim this call holds on its consent


class AdmissionStore:
    def __init__(self, redis: WorkerRedis) -> None:
        self._redis = redis
        self._admit = async_script(redis, "admit", preludes=("gcra", "consent_rules"))
        self._admit_client = async_script(redis, "admit_client", preludes=("gcra",))
        self._release = async_script(redis, "release_claim")

    async def admit(self, client_id: str, consent_id: str, jti: str, grant_id: str, rate: RateArgs = UNLIMITED, *,
                    kid: str, permissions: Iterable[str] = (), account_id: str | None = None, unattended: bool = False,
                    allowance: int = 4, window_seconds: int = 86_400, payment_digest: str = "",
                    allows_consumed: bool = False, claims_consent: bool = True,
                    dpop: tuple[str, int] | None = None, usage: Metering = UNMETERED) -> Verdict:
        """One EVALSHA of admit.lua (its header lists the checks and their order); `kid` signed the token. A payment
        (`payment_digest`) claims its consent for this call unless `claims_consent` is False (a VRP payment: the
        consent stays usable; its amount is held to the ControlParameters instead). `dpop`: the call's DPoP proof's
        jti and how many ms it is remembered: a proof is used once, across workers. `usage`: the call's product and
        UTC month, metered in the same script (and checked against the TPP's plan's quota)."""
        claims = bool(payment_digest) and claims_consent
        # Names this call's unattended charge and a payment's claim; os.urandom is not free, so only when needed.
        nonce = secrets.token_hex(8) if unattended or claims else ""
        answer = await self._admit(
            keys=[names.consent(client_id, consent_id), names.revoked_token(client_id, jti),
                  names.revoked_grant(client_id, grant_id), names.client_disabled(client_id),
                  names.unattended_calls(client_id, consent_id), names.rate_bucket(client_id, rate.group),
                  names.client_tier(client_id), names.revoked_key(client_id, kid),
                  names.usage(client_id, usage.month), names.client_plan(client_id),
                  *_dpop_key(client_id, dpop)],
            args=[client_id, grant_id, " ".join(sorted(permissions)), account_id or "", "1" if unattended else "0",
                  allowance, window_seconds * 1000, jti, rate.default_tier, rate.limits, rate.group,
                  nonce, payment_digest, "1" if allows_consumed else "0", "1" if claims else "0",
                  dpop[1] if dpop is not None else 0, usage.product, usage.default_plan, usage.quotas])
        verdict, state, retry = _common(answer)
        if verdict is not None:
            customer = answer[7].decode() if len(answer) > 7 and answer[7] else None
            return Verdict(verdict, retry, customer, rate=state)
        since, until = orjson.loads(answer[10])
        return Verdict(None, None, answer[7].decode(), tuple(orjson.loads(answer[8])), tuple(orjson.loads(answer[9])),
                       (since, until), answer[11].decode(), state, nonce if claims else None)

    async def settle(self, client_id: str, usage: Metering, *, calls: int = 0, billable: int = 0,
                     reason: str | None = None) -> None:
        """Meter what Admit's script could not know (off the hot path: only a call that is not answered 2xx, or one
        that never reached Admit): `calls` and `billable` to add (-1 takes back the billable Admit counted), and the
        refusal `reason`. One round trip (a pipeline, not a transaction: each HINCRBY is exact on its own)."""
        key = names.usage(client_id, usage.month)
        async with self._redis.pipeline(transaction=False) as pipe:
            if calls:
                pipe.hincrby(key, f"{usage.product}:calls", calls)
                pipe.expire(key, USAGE_TTL_SECONDS, nx=True)
            if billable:
                pipe.hincrby(key, f"{usage.product}:billable", billable)
            if reason is not None:
                pipe.hincrby(key, f"{usage.product}:refused:{reason}", 1)
            await pipe.execute()

    async def release_payment(self, client_id: str, consent_id: str, claim: str) -> None:
        """Give a payment consent back (the bank refused the payment): only the claim this call made."""
        await self._release(keys=[names.consent(client_id, consent_id)], args=[claim])

    async def admit_client(self, client_id: str, jti: str, rate: RateArgs = UNLIMITED, *, kid: str,
                           dpop: tuple[str, int] | None = None) -> Verdict:
        """For client-credentials calls (consent API): the rate limit, the client enabled, the token and its signing
        key (`kid`) not revoked, a DPoP proof (`dpop`, as for `admit`) not used before."""
        answer = await self._admit_client(
            keys=[names.revoked_token(client_id, jti), names.client_disabled(client_id),
                  names.rate_bucket(client_id, rate.group), names.client_tier(client_id),
                  names.revoked_key(client_id, kid), *_dpop_key(client_id, dpop)],
            args=[rate.default_tier, rate.limits, rate.group, dpop[1] if dpop is not None else 0])
        verdict, state, retry = _common(answer)
        return Verdict(verdict, retry, rate=state)

    async def signing_keys(self) -> dict[str, dict[str, Any]]:
        return {text(kid): orjson.loads(raw) for kid, raw in (await self._redis.hgetall(names.SIGNING_KEYS)).items()}



def _dpop_key(client_id: str, dpop: tuple[str, int] | None) -> list[str]:
    """The marker of a DPoP proof's jti, as the scripts' last key; none without a proof."""
    return [names.dpop_proof(client_id, digest(dpop[0]))] if dpop is not None else []


def _common(answer: list[Any]) -> tuple[str | None, RateState | None, int | None]:
    """(refusal reason or None, the rate state, retry ms) from the head every admission script answers with."""
    verdict = answer[0].decode()
    name = answer[1].decode()
    state = RateState(name, int(answer[2]), int(answer[3]), int(answer[4]), int(answer[5])) if name else None
    return (None if verdict == "ok" else verdict), state, int(answer[6]) or None
