"""VrpUsage: the periodic limits of VRP consents, enforced by the gateway across its workers (one Lua step each).

A VRP payment is checked against its consent's ControlParameters before the bank sees it
(consents.control_parameters says which period instances it must fit in, and their limits); this store decides,
atomically, whether it fits given what the consent's other payments have used, and keeps the count:

    verdict = await usage.claim(consent_id, claim_id, amount_minor, periods, hold_seconds)
    verdict.reason is None          -> admitted: the amount now counts in every period; send the payment, then
        bank paid                   -> settle(consent_id, claim_id): the amount keeps counting, the claim goes
        bank refused / never sent   -> release(consent_id, claim_id): the amount is given back, the claim goes
        outcome unknown (timeout, 5xx after sending, crash) -> nothing: the claim stays and keeps counting
    "vrp.limit_exceeded"            -> refuse; `verdict.period_id` names the first period it would exceed
    "vrp.claim_exists"              -> this claim id is held already (claim ids must be fresh); nothing changed

Counting. Per period instance: settled (the bank paid) and pending (claimed, outcome not known). A claim is admitted
iff settled + pending + amount <= limit in every period it names, so 20 concurrent payments that together exceed a
limit pass exactly while they fit, in whatever order Redis runs them. A refused claim changes nothing.

Unknown outcomes never expire. If the bank may have paid, giving the amount back could let the consent's payments
exceed what the PSU agreed, so a claim is held until someone settles or releases it (a later status check with the
bank, or an operator: `obgw consents vrp-held` lists a consent's held claims, `obgw consents vrp-resolve` settles or
releases one through SyncVrpUsage). `hold_seconds` is not a lease: it only sets when the claim becomes *overdue*,
which `claims()` reports so the unresolved ones can be found and reconciled. The cost of this safe default: an
unresolved claim keeps its room in its periods until resolved (or until its periods are over).

Old periods. A claim names the consent's current period instances; the period ids it does not name are old ones
(a month ago's, say). They are pruned by an admitted claim once no claim has named them for `prune_after_seconds`
(default an hour), so a worker whose clock is a little behind, still counting against the period just ended,
never finds it emptied. Settling a claim of a pruned period does not bring it back.

Fail closed: every Redis error propagates (the caller refuses the payment, 503). A timeout on `claim` may or may not
have taken the room: the caller may `release` the claim id (it never reached the bank), which is a no-op if absent.

Keys (names.py, hash-tagged by the consent: one Redis Cluster slot): `vrp_usage(consent_id)`, `vrp_claims(consent_id)`;
their layout is in scripts/vrp_usage.lua.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from gateway.store import names
from gateway.store.redis import ScriptArg, WorkerRedis, async_script, sync_script, text

# Amounts and limits: sums stay exact integers in Lua (doubles); consents.control_parameters clamps to it.
MAX_MINOR = 2 ** 52
PRUNE_AFTER_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str | None                 # None: admitted; "vrp.limit_exceeded" | "vrp.claim_exists"
    period_id: str | None = None       # vrp.limit_exceeded: the first period (in the order given) it would exceed
    limit_minor: int | None = None     # ... that period's limit
    counted_minor: int | None = None   # ... and what counted in it already (settled + pending)

    @property
    def admitted(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    settled: int        # the bank paid
    pending: int        # claimed, outcome not settled (counts against the limit all the same)

    @property
    def counted(self) -> int:
        return self.settled + self.pending


@dataclass(frozen=True, slots=True)
class HeldClaim:
    """A claim not settled nor released: its payment is in flight, or its outcome unknown."""
    claim_id: str
    amount_minor: int
    periods: tuple[str, ...]
    claimed_ms: int             # Redis time
    resolve_by_ms: int          # claimed + hold_seconds: past it, the claim is overdue (reconcile it with the bank)

    def overdue(self, now_ms: int) -> bool:
        return now_ms >= self.resolve_by_ms


class VrpUsage:
    """The request path's access (async, one EVALSHA per operation) on the worker's client."""

    def __init__(self, redis_async: WorkerRedis, *, prune_after_seconds: float = PRUNE_AFTER_SECONDS) -> None:
        if prune_after_seconds < 0:
            raise ValueError("prune_after_seconds must not be negative")
        self._redis = redis_async
        self._script = async_script(redis_async, "vrp_usage")
        self._prune_ms = int(prune_after_seconds * 1000)

    async def claim(self, consent_id: str, claim_id: str, amount_minor: int,
                    periods: Sequence[tuple[str, int]], hold_seconds: float) -> Verdict:
        """Take `amount_minor` in every period (period_id, limit_minor) if it fits in all of them, else nothing.
        A period named twice counts once, with the lower limit."""
        args = _claim_args(claim_id, amount_minor, periods, hold_seconds, self._prune_ms)
        return _verdict(await self._script(keys=_keys(consent_id), args=args))

    async def settle(self, consent_id: str, claim_id: str) -> bool:
        """The bank paid: the claim's amount keeps counting, the claim goes. False: no such claim (nothing done)."""
        return bool(await self._script(keys=_keys(consent_id), args=_resolve_args("settle", claim_id)))

    async def release(self, consent_id: str, claim_id: str) -> bool:
        """The bank did not pay (refused, failed before paying, never sent): the claim's amount is given back.
        False: no such claim (nothing done)."""
        return bool(await self._script(keys=_keys(consent_id), args=_resolve_args("release", claim_id)))

    async def usage(self, consent_id: str) -> dict[str, int]:
        """period id -> what counts in it (settled + pending), for the periods kept."""
        return {period: each.counted for period, each in (await self.detail(consent_id)).items()}

    async def detail(self, consent_id: str) -> dict[str, PeriodUsage]:
        """period id -> settled and pending, for the periods kept (one HGETALL: a consistent snapshot)."""
        return _detail(await self._redis.hgetall(names.vrp_usage(consent_id)))

    async def claims(self, consent_id: str) -> list[HeldClaim]:
        """The consent's claims not settled nor released, oldest first."""
        return _claims(await self._redis.hgetall(names.vrp_claims(consent_id)))

    async def now_ms(self) -> int:
        """Redis's clock (that of `HeldClaim.overdue`)."""
        return _ms(await self._redis.time())


class SyncVrpUsage:
    """The same reads, and the resolution of a held claim, synchronous (`store.redis.sync_client`): the dashboard
    reads, the operator (`obgw consents vrp-held|vrp-resolve`) lists the held claims and settles or releases one once
    the bank has said whether it paid."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._script = sync_script(client, "vrp_usage")

    def settle(self, consent_id: str, claim_id: str) -> bool:
        """As VrpUsage.settle: the bank paid."""
        return bool(self._script(keys=_keys(consent_id), args=_resolve_args("settle", claim_id)))

    def release(self, consent_id: str, claim_id: str) -> bool:
        """As VrpUsage.release: the bank did not pay."""
        return bool(self._script(keys=_keys(consent_id), args=_resolve_args("release", claim_id)))

    def usage(self, consent_id: str) -> dict[str, int]:
        return {period: each.counted for period, each in self.detail(consent_id).items()}

    def detail(self, consent_id: str) -> dict[str, PeriodUsage]:
        return _detail(self._client.hgetall(names.vrp_usage(consent_id)))

    def claims(self, consent_id: str) -> list[HeldClaim]:
        return _claims(self._client.hgetall(names.vrp_claims(consent_id)))

    def now_ms(self) -> int:
        return _ms(self._client.time())


def _keys(consent_id: str) -> list[str]:
    return [names.vrp_usage(consent_id), names.vrp_claims(consent_id)]


def _resolve_args(operation: str, claim_id: str) -> list[ScriptArg]:
    """settle | release of one claim (scripts/vrp_usage.lua)."""
    if not claim_id:
        raise ValueError("a claim needs an id")
    return [operation, claim_id]


def _ms(redis_time: tuple[Any, Any]) -> int:
    """Redis's TIME answer (seconds, microseconds) in milliseconds."""
    seconds, micros = redis_time
    return int(seconds) * 1000 + int(micros) // 1000


def _claim_args(claim_id: str, amount_minor: int, periods: Sequence[tuple[str, int]], hold_seconds: float,
                prune_ms: int) -> list[ScriptArg]:
    if not claim_id:
        raise ValueError("a claim needs an id")
    if not 0 < amount_minor <= MAX_MINOR:
        raise ValueError(f"amount_minor must be in 1..{MAX_MINOR}, not {amount_minor}")
    if hold_seconds < 0:
        raise ValueError("hold_seconds must not be negative")
    merged: dict[str, int] = {}
    for period_id, limit_minor in periods:
        if not period_id:
            raise ValueError("a period needs an id")
        if not 0 <= limit_minor <= MAX_MINOR:
            raise ValueError(f"limit_minor must be in 0..{MAX_MINOR}, not {limit_minor} ({period_id})")
        merged[period_id] = min(merged.get(period_id, limit_minor), limit_minor)
    args: list[ScriptArg] = ["claim", claim_id, int(amount_minor), int(hold_seconds * 1000), prune_ms, len(merged)]
    for period_id, limit_minor in merged.items():
        args += [period_id, int(limit_minor)]
    return args


def _verdict(answer: list[Any]) -> Verdict:
    state = text(answer[0])
    if state == "ok":
        return Verdict(None)
    if state == "exceeded":
        return Verdict("vrp.limit_exceeded", text(answer[1]), int(answer[2]), int(answer[3]))
    if state == "exists":
        return Verdict("vrp.claim_exists")
    raise redis.ResponseError(f"vrp_usage.lua: unexpected answer {state!r}")


def _detail(fields: Mapping[Any, Any]) -> dict[str, PeriodUsage]:
    settled: dict[str, int] = {}
    pending: dict[str, int] = {}
    for raw_field, raw_value in fields.items():
        field = text(raw_field)
        kind, period = field[:2], field[2:]
        if kind == "s:":
            settled.setdefault(period, 0)
        elif kind == "u:":
            settled[period] = int(raw_value)
        elif kind == "p:":
            pending[period] = int(raw_value)
    return {period: PeriodUsage(settled.get(period, 0), pending.get(period, 0))
            for period in sorted(settled.keys() | pending.keys())}


def _claims(fields: Mapping[Any, Any]) -> list[HeldClaim]:
    held = []
    for raw_id, raw in fields.items():
        record = orjson.loads(raw)
        periods = record.get("p") or []  # cjson writes an empty list as {}
        held.append(HeldClaim(text(raw_id), int(record["a"]), tuple(str(p) for p in periods), int(record["t"]),
                              int(record["h"])))
    return sorted(held, key=lambda each: (each.claimed_ms, each.claim_id))
