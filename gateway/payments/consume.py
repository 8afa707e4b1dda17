"""ConsumeConsent: a payment consent pays once. Admit claimed it for this call; once the bank has accepted the
payment the consent becomes Consumed (its tokens then only read the payment), and if the bank refused it (say, for
insufficient funds) the claim is released and nothing changed. If the outcome is unknown (the bank timed out or
failed), the claim stays: no second payment can start under this consent. Once the bank has answered, a Redis
failure does not hide its answer from the TPP (settle.py)."""
from __future__ import annotations

from gateway.call import Call, Stage, required
from gateway.consents.lifecycle import ConsentConflict, move_async
from gateway.consents.model import Status, from_record
from gateway.errors import Refusal
from gateway.payments.idempotency import UNKNOWN_OUTCOME
from gateway.payments.settle import now_or_later


class ConsumeConsent(Stage):
    def __init__(self, consents, admission) -> None:
        self._consents = consents    # ConsentStore, its async twins (the status change, as everywhere: lifecycle)
        self._admission = admission  # async AdmissionStore (the claim)

    async def on_response(self, call: Call) -> None:
        if call.payment_claim is None:
            return
        client_id, consent_id, claim = call.tpp, required(call.consent_id, "consent_id"), call.payment_claim
        if 200 <= call.answer.status < 300:
            await now_or_later(f"consent {consent_id} paid: Consumed", lambda: self._consume(client_id, consent_id))
        else:
            await now_or_later(f"consent {consent_id} refused by the bank: claim released",
                               lambda: self._admission.release_payment(client_id, consent_id, claim))

    async def on_abort(self, call: Call, refusal: Refusal) -> None:
        if call.payment_claim is not None and refusal.reason not in UNKNOWN_OUTCOME:
            await self._admission.release_payment(call.tpp, call.consent_id, call.payment_claim)

    async def _consume(self, client_id: str, consent_id: str) -> None:
        try:
            await move_async(self._consents, from_record(await self._consents.aget(client_id, consent_id)),
                             Status.CONSUMED)
        except ConsentConflict:
            pass  # revoked while the bank paid: the payment stands, the consent stays what it became
