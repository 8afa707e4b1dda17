"""The consent resources the gateway answers itself (UK OB v3.1.11): account-access-consents (POST, GET, DELETE;
Account and Transaction API), every payment kind's consents (POST, GET; a VRP consent's DELETE too; a file-payment
consent's file, POST and GET: Payment Initiation and VRP APIs) and funds-confirmation-consents (POST, GET, DELETE;
Confirmation of Funds API).

Each runs after the consent-API stages (certificate, client-credentials token with the resource's scope, rate
limit, client active; for payment consents also the idempotency key). A TPP only ever sees its own consents:
another TPP's id is simply not found.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import orjson
from starlette.concurrency import run_in_threadpool

from gateway.call import STOP, Call, Flow, Stage, Upstream
from gateway.consents import validate
from gateway.consents.lifecycle import ConsentConflict, lapse_seconds, move_async, revoke
from gateway.consents.model import (
    Consent,
    Kind,
    Status,
    expires_ms,
    from_record,
    to_record,
)
from gateway.consents.payment_file import checked_file
from gateway.consents.payment_kinds import PaymentKind
from gateway.errors import Refusal
from gateway.json_body import InvalidJson, loads_request
from gateway.policy.model import ACCOUNT_ACCESS_CONSENTS, FILE_SUFFIX, FUNDS_CONFIRMATION_CONSENTS

_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


class _Consents(Stage):
    """The last stage of a consent API: answers the call itself (sets `call.upstream`, returns STOP)."""

    kind: Kind
    base: str
    prefix: str
    methods: tuple[str, ...] = ("GET",)  # on /{ConsentId}
    has_risk = True                      # the answer carries the consent's Risk (OBRisk)
    first_status = Status.AWAITING_AUTHORISATION

    def __init__(self, store, issuer: str, authorise_seconds: int, notify) -> None:
        self._store, self._issuer, self._authorise_seconds = store, issuer, authorise_seconds
        self._notify = notify  # tells the TPP of a revocation (the durable outbox)

    async def on_request(self, call: Call) -> Flow:
        consent_id = call.path_params.get("ConsentId")
        allowed = self.methods if consent_id else ("POST",)
        if call.method not in allowed:
            raise Refusal("route.method_not_allowed", headers={"Allow": ", ".join(allowed)})
        if call.method == "POST":
            await self._create(call)
            return STOP
        consent = await self.owned(call.tpp, call.path_params["ConsentId"])
        call.consent_id = consent.consent_id
        if call.method == "GET":
            call.upstream = Upstream(200, list(_JSON), self._document(consent))
            return STOP
        try:
            # The one revocation every place makes (lifecycle.revoke: the status change, then the TPP's notice in
            # the durable outbox), on the sync store in a thread, as the dashboard and the CLI revoke.
            await run_in_threadpool(lambda: revoke(self._store, consent, self._notify, deleted=True))
        except ConsentConflict:
            raise Refusal("consent.conflict", f"The consent is {consent.status}.") from None
        call.upstream = Upstream(204, [(b"cache-control", b"no-store")], b"")
        return STOP

    async def _create(self, call: Call) -> None:
        try:
            body = loads_request(call.body)
        except InvalidJson as exc:
            raise Refusal("request.invalid_json", f"The body is not accepted: {exc}.") from None
        now = datetime.now(timezone.utc)
        created = now.isoformat(timespec="seconds")
        fields = {"permissions": (), "expires": None, "transaction_from": None, "transaction_to": None,
                  **self._asked(body)}
        consent = Consent(
            consent_id=f"{self.prefix}-{uuid.uuid4()}", client_id=call.tpp, kind=self.kind,
            status=self.first_status, created=created, status_updated=created, customer_id=None,
            accounts=(), authorise_by=(now + timedelta(seconds=self._authorise_seconds)).isoformat(
                timespec="milliseconds"), **fields)
        await self._store.acreate(to_record(consent), expires_ms(consent), lapse_seconds(self._authorise_seconds))
        call.consent_id = consent.consent_id
        call.upstream = Upstream(201, list(_JSON), self._document(consent))

    async def owned(self, client_id: str, consent_id: str) -> Consent:
        record = await self._store.aget(client_id, consent_id)
        # A deleted consent is gone for the TPP (UK OB: GET after DELETE is a 400), though kept for the customer.
        if record is None or record["kind"] != self.kind or record.get("deleted"):
            raise Refusal("consent.unknown", path="ConsentId")
        return from_record(record)

    def _asked(self, body: object) -> dict:
        """The consent's fields from the request body (validated)."""
        raise NotImplementedError

    def _data(self, consent: Consent) -> dict:
        raise NotImplementedError

    def _document(self, consent: Consent) -> bytes:
        data = {"ConsentId": consent.consent_id, "CreationDateTime": consent.created, "Status": str(consent.status),
                "StatusUpdateDateTime": consent.status_updated, **self._data(consent)}
        risk = {"Risk": consent.risk or {}} if self.has_risk else {}
        return orjson.dumps({"Data": data, **risk,
                             "Links": {"Self": f"{self._issuer}{self.base}/{consent.consent_id}"}, "Meta": {}})


class AccountAccessConsents(_Consents):
    """OBReadConsent1 in, OBReadConsentResponse1 out."""

    kind, base, prefix, methods = Kind.ACCOUNT_ACCESS, ACCOUNT_ACCESS_CONSENTS, "aac", ("GET", "DELETE")

    def _asked(self, body: object) -> dict:
        asked = validate.account_access(body)
        return {"permissions": asked.permissions, "expires": asked.expires,
                "transaction_from": asked.transaction_from, "transaction_to": asked.transaction_to}

    def _data(self, consent: Consent) -> dict:
        data: dict = {"Permissions": list(consent.permissions)}
        for name, value in (("ExpirationDateTime", consent.expires), ("TransactionFromDateTime",
                            consent.transaction_from), ("TransactionToDateTime", consent.transaction_to)):
            if value:
                data[name] = value
        return data


class PaymentConsents(_Consents):
    """A payment kind's consent resource (`payment_kinds.PAYMENT_KINDS`): its request schema in, the Data as asked
    (Initiation, ControlParameters, Permission...) with the consent's id and status out, and the Risk."""

    def __init__(self, kind: PaymentKind, store, issuer: str, authorise_seconds: int, notify) -> None:
        super().__init__(store, issuer, authorise_seconds, notify)
        self.payment = kind
        self.kind, self.base, self.prefix = kind.kind, kind.path, kind.prefix
        self.methods = ("GET", "DELETE") if kind.revocable else ("GET",)
        self.has_risk, self.first_status = kind.has_risk, kind.first_status

    def _asked(self, body: object) -> dict:
        asked = validate.payment_consent(self.payment, body)
        return {"initiation": asked.initiation, "risk": asked.risk, "terms": asked.terms}

    def _data(self, consent: Consent) -> dict:
        return dict(consent.terms or {"Initiation": consent.initiation})


class FundsConfirmationConsents(_Consents):
    """OBFundsConfirmationConsent1 in, OBFundsConfirmationConsentResponse1 out (no Risk in this API)."""

    kind, base, prefix, methods = Kind.FUNDS_CONFIRMATION, FUNDS_CONFIRMATION_CONSENTS, "fcc", ("GET", "DELETE")
    has_risk = False

    def _asked(self, body: object) -> dict:
        asked = validate.funds_confirmation(body)
        return {"expires": asked.expires, "debtor_account": asked.debtor_account}

    def _data(self, consent: Consent) -> dict:
        data: dict = {"DebtorAccount": consent.debtor_account}
        if consent.expires:
            data["ExpirationDateTime"] = consent.expires
        return data


class ConsentFiles(Stage):
    """A file-payment consent's file (`/{ConsentId}/file`): POST uploads it once, while the consent is AwaitingUpload
    - checked against the consent (consents/payment_file.py) and stored with the consent's move to
    AwaitingAuthorisation in one step - and GET reads it back as uploaded. After the consent-API stages (for POST:
    x-jws-signature over the file, x-idempotency-key)."""

    def __init__(self, consents: PaymentConsents, store) -> None:
        self._consents, self._store = consents, store
        self.base = consents.base + FILE_SUFFIX

    async def on_request(self, call: Call) -> Flow:
        consent = await self._consents.owned(call.tpp, call.path_params["ConsentId"])
        call.consent_id = consent.consent_id
        store = self._store
        if call.method == "GET":
            content = await store.afile(call.tpp, consent.consent_id)
            if content is None:
                raise Refusal("file.not_uploaded", path="ConsentId")
            call.upstream = Upstream(200, list(_JSON), content)
            return STOP
        if consent.status is not Status.AWAITING_UPLOAD:
            raise Refusal("consent.conflict", f"The consent is {consent.status}: its file is uploaded once.")
        checked = checked_file(call.body, consent.initiation or {})
        try:
            await move_async(store, consent, Status.AWAITING_AUTHORISATION, file=checked.content)
        except ConsentConflict as conflict:
            raise Refusal("consent.conflict", f"The consent is {conflict.found}.") from None
        call.upstream = Upstream(200, [(b"cache-control", b"no-store")], b"")
        return STOP
