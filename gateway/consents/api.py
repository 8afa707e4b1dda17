"""The account-access-consents resource (UK OB v3.1.11 Account and Transaction API): POST, GET, DELETE.

Answered by the gateway itself, after the consent-API stages (certificate, client-credentials token with scope
`accounts`, client active). A TPP only ever sees its own consents: another TPP's id is simply not found.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import orjson
from starlette.concurrency import run_in_threadpool

from gateway.consents import validate
from gateway.consents.lifecycle import ConsentConflict, revoke
from gateway.consents.model import Consent, Kind, Status, expires_ms, from_record, to_record
from gateway.errors import Refusal
from gateway.pipeline.call import Call, Upstream

BASE = "/open-banking/v3.1/aisp/account-access-consents"
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


class AccountAccessConsents:
    """The last stage of the consent API: answers the call itself (sets `call.upstream`)."""

    def __init__(self, store, issuer: str, authorise_seconds: int, notify) -> None:
        self._store, self._issuer, self._authorise_seconds = store, issuer, authorise_seconds
        self._notify = notify  # tells the TPP of a revocation (the durable outbox)

    async def on_request(self, call: Call) -> None:
        consent_id = call.path_params.get("ConsentId")
        allowed = ("GET", "DELETE") if consent_id else ("POST",)
        if call.method not in allowed:
            raise Refusal("route.method_not_allowed", headers={"Allow": ", ".join(allowed)})
        if call.method == "POST":
            return await self._create(call)
        consent = await run_in_threadpool(self._owned, call.client_id, consent_id)
        call.consent_id = consent.consent_id
        if call.method == "GET":
            call.upstream = Upstream(200, list(_JSON), self._document(consent))
            return
        try:
            await run_in_threadpool(lambda: revoke(self._store, consent, self._notify, deleted=True))
        except ConsentConflict:
            raise Refusal("consent.conflict", f"The consent is {consent.status}.") from None
        call.upstream = Upstream(204, [(b"cache-control", b"no-store")], b"")

    async def _create(self, call: Call) -> None:
        try:
            body = orjson.loads(call.body)
        except orjson.JSONDecodeError:
            raise Refusal("request.invalid_json") from None
        asked = validate.account_access(body)
        now = datetime.now(timezone.utc)
        created = now.isoformat(timespec="seconds")
        consent = Consent(
            consent_id=f"aac-{uuid.uuid4()}", client_id=call.client_id, kind=Kind.ACCOUNT_ACCESS,
            status=Status.AWAITING_AUTHORISATION, created=created, status_updated=created,
            permissions=asked.permissions, expires=asked.expires, transaction_from=asked.transaction_from,
            transaction_to=asked.transaction_to, customer_id=None, accounts=(),
            authorise_by=(now + timedelta(seconds=self._authorise_seconds)).isoformat(timespec="milliseconds"))
        await run_in_threadpool(self._store.create, to_record(consent), expires_ms(consent))
        call.consent_id = consent.consent_id
        call.upstream = Upstream(201, list(_JSON), self._document(consent))

    def _owned(self, client_id: str, consent_id: str) -> Consent:
        record = self._store.get(client_id, consent_id)
        # A deleted consent is gone for the TPP (UK OB: GET after DELETE is a 400), though kept for the customer.
        if record is None or record["kind"] != Kind.ACCOUNT_ACCESS or record.get("deleted"):
            raise Refusal("consent.unknown", path="ConsentId")
        return from_record(record)

    def _document(self, consent: Consent) -> bytes:
        """OBReadConsentResponse1."""
        data = {"ConsentId": consent.consent_id, "CreationDateTime": consent.created, "Status": str(consent.status),
                "StatusUpdateDateTime": consent.status_updated, "Permissions": list(consent.permissions)}
        for name, value in (("ExpirationDateTime", consent.expires), ("TransactionFromDateTime",
                            consent.transaction_from), ("TransactionToDateTime", consent.transaction_to)):
            if value:
                data[name] = value
        return orjson.dumps({"Data": data, "Risk": {},
                             "Links": {"Self": f"{self._issuer}{BASE}/{consent.consent_id}"}, "Meta": {}})
