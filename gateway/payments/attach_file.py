"""AttachFile: a file payment reaches the bank with its consent's file. The TPP uploaded the file to the consent
(consents/payment_file.py checked it against the consent) and the customer authorised that consent; the payment
itself names only the consent and repeats its Initiation. So the body the bank reads is the TPP's OBWriteFile2 with
one more top-level member, "File": the file's bytes exactly as uploaded, in base64 (the bank checks them against
the Initiation's FileHash once more before it pays).

Last before Forward, after Admit has claimed the consent for this call, so a failure here releases the claim
(ConsumeConsent's on_abort): nothing has been sent to the bank."""
from __future__ import annotations

import base64

import orjson

from gateway.call import CONTINUE, Call, Flow, Stage, required
from gateway.errors import Refusal
from gateway.store.consents import ConsentStore
from gateway.store.redis import RedisError


class AttachFile(Stage):
    def __init__(self, consents: ConsentStore) -> None:
        self._consents = consents

    async def on_request(self, call: Call) -> Flow:
        if not call.routed.attaches_file:
            return CONTINUE
        try:
            content = await self._consents.afile(call.tpp, required(call.consent_id, "consent_id"))
        except (RedisError, OSError):
            raise Refusal("admission.unavailable", headers={"Retry-After": "1"}) from None
        if content is None:  # an authorised file-payment consent has its file: only if Redis lost it
            raise Refusal("file.not_uploaded", path="Data.ConsentId")
        document = required(call.document, "document")
        call.body = orjson.dumps({**document, "File": base64.b64encode(content).decode("ascii")})
        return CONTINUE
