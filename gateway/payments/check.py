"""CheckPayment: a payment is the one the customer consented to (Payment Initiation API, domestic-payments:
"the Initiation and Risk sections must match the consent exactly"), and a payment read is of this consent's payment.

CheckRequest has checked the body against the route's schema and that `Data.ConsentId` is the token's consent; the
digest of Initiation + Risk goes to Admit, which compares it with the consent's in its one round trip and, for a
single payment, claims the consent for this one call (so two payments under one consent can never both go through).
A VRP payment repeats its consent's Initiation too; its amount is held to the ControlParameters (payments/vrp.py).
"""
from __future__ import annotations

import orjson

from gateway.call import CONTINUE, Call, Flow, Stage, required
from gateway.consents.model import payment_digest
from gateway.errors import Refusal


class CheckPayment(Stage):
    """After CheckRequest (the body is its route's schema and names the token's consent)."""

    async def on_request(self, call: Call) -> Flow:
        route = call.routed
        if not (route.uses_consent or route.control_parameters):
            return CONTINUE
        body = required(call.document, "document")
        call.payment_digest = payment_digest(body["Data"]["Initiation"], body.get("Risk") or {})
        return CONTINUE

    async def on_response(self, call: Call) -> None:
        """A payment read answers only for this consent's own payment (the bank knows the customer, not the TPP)."""
        upstream = call.upstream
        if call.method != "GET" or call.routed.scope != "payments" or upstream is None or upstream.status != 200:
            return
        try:
            data = orjson.loads(upstream.body)["Data"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise Refusal("minimise.failed") from None
        # A payment's details (OBWritePaymentDetailsResponse1) name no consent: the bank, told the consent
        # (x-bank-consent-id), answers for its own payments only.
        if isinstance(data, dict) and "ConsentId" in data and data["ConsentId"] != call.consent_id:
            raise Refusal("payment.not_found")
