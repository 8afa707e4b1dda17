"""HoldToControlParameters: a VRP payment's amount is held to its consent's ControlParameters by the gateway, before
the bank sees it (UK OB VRP v3.1.11: the validity window, MaximumIndividualAmount, every PeriodicLimit), atomically
across workers: one script call claims the amount in every current period if it fits in all of them
(store/vrp.py), so concurrent payments that together pass a limit get exactly the room there is.

After Admit (the consent usable, its Initiation and Risk repeated) and CheckRequest (an OBDomesticVRPRequest).
The claim is settled when the bank pays (2xx), released when it refuses or the call is refused after the claim,
and kept while the outcome is unknown (the bank may have paid: it keeps counting until resolved). A consent's
ControlParameters never change once created: they are read once per worker and kept."""
from __future__ import annotations

import secrets
from collections import OrderedDict
from datetime import datetime, timezone

from redis.exceptions import RedisError

from gateway.call import CONTINUE, Call, Flow, Stage, required
from gateway.consents.control_parameters import (
    ControlParameters,
    Rejection,
    limits_for_payment,
    parse_control_parameters,
)
from gateway.errors import Refusal
from gateway.payments.idempotency import UNKNOWN_OUTCOME
from gateway.store.consents import ConsentStore
from gateway.store.vrp import VrpUsage

HOLD_SECONDS = 60   # a claim whose outcome is still unknown after this is overdue (`obgw consents vrp-held`)
KEPT = 4096         # consents whose ControlParameters a worker keeps


class HoldToControlParameters(Stage):
    def __init__(self, consents: ConsentStore, usage: VrpUsage) -> None:
        self._consents, self._usage = consents, usage
        self._kept: OrderedDict[str, ControlParameters] = OrderedDict()

    async def on_request(self, call: Call) -> Flow:
        if not call.routed.control_parameters:
            return CONTINUE
        consent_id = required(call.consent_id, "consent_id")
        instruction = required(call.document, "document")["Data"]["Instruction"]
        amount = instruction["InstructedAmount"]
        try:
            params = await self._params(call.tpp, consent_id)
            limits = limits_for_payment(params, amount["Amount"], amount["Currency"], datetime.now(timezone.utc))
            if isinstance(limits, Rejection):
                raise Refusal(limits.reason, f"{limits.detail}.", path="Data.Instruction.InstructedAmount")
            claim = secrets.token_hex(8)
            verdict = await self._usage.claim(consent_id, claim, limits.amount_minor, limits.periods, HOLD_SECONDS)
        except (RedisError, OSError):
            raise Refusal("admission.unavailable", headers={"Retry-After": "1"}) from None
        if verdict.reason == "vrp.limit_exceeded":
            raise Refusal("vrp.limit_exceeded", f"The payment would pass the consent's {verdict.period_id} limit.",
                          path="Data.Instruction.InstructedAmount.Amount")
        if verdict.reason is not None:  # a claim id drawn twice (64 random bits): nothing was taken, a retry may go
            raise Refusal(verdict.reason, headers={"Retry-After": "1"})
        call.vrp_claim = claim
        return CONTINUE

    async def on_response(self, call: Call) -> None:
        if call.vrp_claim is not None:
            consent_id = required(call.consent_id, "consent_id")
            if 200 <= call.answer.status < 300:
                await self._usage.settle(consent_id, call.vrp_claim)
            else:
                await self._usage.release(consent_id, call.vrp_claim)

    async def on_abort(self, call: Call, refusal: Refusal) -> None:
        if call.vrp_claim is not None and refusal.reason not in UNKNOWN_OUTCOME:
            await self._usage.release(required(call.consent_id, "consent_id"), call.vrp_claim)

    async def _params(self, client_id: str, consent_id: str) -> ControlParameters:
        params = self._kept.get(consent_id)
        if params is None:
            record = await self._consents.aget(client_id, consent_id)
            if record is None or not (record.get("terms") or {}).get("ControlParameters"):
                raise Refusal("consent.not_found")
            params = parse_control_parameters(record["terms"]["ControlParameters"], record["created"])
            self._kept[consent_id] = params
            if len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return params
