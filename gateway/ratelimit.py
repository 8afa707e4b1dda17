"""A TPP's rate limits as the admission scripts take them, and what their verdict puts on the answer: the IETF
httpapi `RateLimit-Policy`/`RateLimit` headers and, over a limit, a refusal that says when to come back. Shared by
every listener that charges a TPP's limit: the resource and consent-API pipelines, PAR, idempotent replays."""
from __future__ import annotations

import math
from datetime import datetime, timezone

from gateway.call import Call
from gateway.errors import Refusal, token_refusal
from gateway.policy.model import RateLimits
from gateway.store.admission import RateArgs, Verdict

_WAIT_REASONS = ("ratelimit.exceeded", "consent.unattended_limit")  # refusals that say when to come back


class RateLimitArgs:
    """The rate policy of each route as the scripts take it, built once per route id."""

    def __init__(self, limits: RateLimits) -> None:
        self._limits = limits
        self._by_route: dict[str, RateArgs] = {}

    def __call__(self, route_id: str) -> RateArgs:
        args = self._by_route.get(route_id)
        if args is None:
            group, tiers = self._limits.for_route(route_id)
            text = ";".join(f"{tier} {limit.rate_per_second if limit else 0} {limit.burst if limit else 0}"
                            for tier, limit in sorted(tiers.items()))
            args = self._by_route[route_id] = RateArgs(group, self._limits.default_tier, text)
        return args


def conclude(call: Call, verdict: Verdict) -> None:
    """Put the rate headers on the answer (IETF httpapi rate-limit headers), then refuse if the verdict says so."""
    if verdict.rate is not None:
        rate = verdict.rate
        call.response_headers += [
            (b"ratelimit-policy", f'"{rate.policy}";q={rate.quota};w={rate.window}'.encode()),
            (b"ratelimit", f'"{rate.policy}";r={rate.remaining};t={rate.reset}'.encode())]
    if verdict.reason == "usage.quota_exceeded":  # the plan's quota opens again with the next UTC month
        raise Refusal(verdict.reason, headers={"Retry-After": str(seconds_to_next_month(call.ts))})
    if verdict.reason in _WAIT_REASONS:
        # RFC 9110 §10.2.3: whole seconds; a retry at that moment is admitted (the scripts compute the exact wait).
        raise Refusal(verdict.reason, headers={"Retry-After": str(max(1, math.ceil((verdict.retry_ms or 0) / 1000)))})
    if verdict.reason is not None:
        raise token_refusal(verdict.reason)


def seconds_to_next_month(ts: str) -> int:
    """Whole seconds from `ts` (ISO 8601) to the start of the next UTC month, at least 1."""
    moment = datetime.fromisoformat(ts).astimezone(timezone.utc)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return max(1, math.ceil((datetime(year, month, 1, tzinfo=timezone.utc) - moment).total_seconds()))
