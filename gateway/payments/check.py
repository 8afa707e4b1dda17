"""CheckPayment: a payment is the one the customer consented to (Payment Initiation API, domestic-payments:
"the Initiation and Risk sections must match the consent exactly"), and a payment read is of this consent's payment.

The body is checked against OBWriteDomestic2 itself, `Data.ConsentId` must be the token's consent, and the digest
of Initiation + Risk goes to Admit, which compares it with the consent's in its one round trip and claims the
consent for this one call (so two payments under one consent can never both go through).
"""
from __future__ import annotations

from typing import cast

import orjson

from gateway.call import CONTINUE, Call, Flow, Stage
from gateway.consents.model import payment_digest
from gateway.consents.validate import domestic_payment
from gateway.errors import Refusal
from gateway.json_body import InvalidJson, loads_request


class CheckPayment(Stage):
    async def on_request(self, call: Call) -> Flow:
        if not call.routed.uses_consent:
            return CONTINUE
        try:
            body = loads_request(call.body)
        except InvalidJson as exc:
            raise Refusal("request.invalid_json", f"The body is not accepted: {exc}.") from None
        payment = domestic_payment(body, "OBWriteDomestic2")  # a schema-valid OBWriteDomestic2: Data.ConsentId
        if cast(dict, body)["Data"]["ConsentId"] != call.consent_id:
            raise Refusal("payment.consent_mismatch", "Data.ConsentId is not the consent of the access token.",
                          path="Data.ConsentId")
        call.payment_digest = payment_digest(payment.initiation, payment.risk)
        return CONTINUE

    async def on_response(self, call: Call) -> None:
        """A payment read answers only for this consent's own payment (the bank knows the customer, not the TPP)."""
        upstream = call.upstream
        if not call.routed.allows_consumed or upstream is None or upstream.status != 200:
            return
        try:
            consent_id = orjson.loads(upstream.body)["Data"]["ConsentId"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise Refusal("minimise.failed") from None
        if consent_id != call.consent_id:
            raise Refusal("payment.not_found")
