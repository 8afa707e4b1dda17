"""The payment stages on the request path reach Redis only through the stores' async twins (never a thread), read
live: VerifySignature reads the client's JWKS on every call; ConsumeConsent makes a paid consent Consumed through
lifecycle's compare-and-set, and gives the claim back when the bank refused or nothing was sent."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from gateway.call import CONTINUE, Call, Upstream
from gateway.consents.model import Consent, Kind, Status, to_record
from gateway.errors import Refusal
from gateway.payments.consume import ConsumeConsent
from gateway.payments.jws import sign_detached
from gateway.payments.signature import VerifySignature
from gateway.pki import make_signing_jwk, public_jwk

CLIENT, CONSENT_ID, CLAIM = "tpp-demo", "pdc-1", "claim-1"
BODY = b'{"Data":{}}'
KEY = make_signing_jwk()


class Clients:
    """The TPP registry's async twin: counts the reads."""

    def __init__(self, document: dict) -> None:
        self.document, self.reads = document, 0

    async def aget(self, client_id: str) -> dict | None:
        self.reads += 1
        return self.document if client_id == CLIENT else None


def _signed_call() -> Call:
    return Call(interaction_id="i", ts="t", started=0.0, method="POST", client_id=CLIENT, body=BODY,
                route=SimpleNamespace(signature_required=True),
                headers=[(b"x-jws-signature", sign_detached(BODY, KEY, CLIENT).encode())])


def test_the_signature_is_checked_against_the_jwks_read_on_every_call():
    clients = Clients({"client_id": CLIENT, "jwks": {"keys": [public_jwk(KEY)]}})
    stage = VerifySignature(clients)
    assert asyncio.run(stage.on_request(_signed_call())) is CONTINUE
    clients.document = {"client_id": CLIENT, "jwks": {"keys": []}}  # the key withdrawn: holds from the next call
    with pytest.raises(Refusal) as refused:
        asyncio.run(stage.on_request(_signed_call()))
    assert refused.value.reason.startswith("signature.") and clients.reads == 2


class Consents:
    """The consent store's async twins, over one consent."""

    def __init__(self, status: Status = Status.AUTHORISED) -> None:
        self.record = to_record(Consent(
            consent_id=CONSENT_ID, client_id=CLIENT, kind=Kind.DOMESTIC_PAYMENT, status=status, created="2026-06-01",
            status_updated="2026-06-01", permissions=(), expires=None, transaction_from=None, transaction_to=None,
            customer_id="alice", accounts=("acc-1",), initiation={"InstructionIdentification": "A"}, risk={}))
        self.moves: list = []

    async def aget(self, client_id: str, consent_id: str) -> dict | None:
        return self.record if (client_id, consent_id) == (CLIENT, CONSENT_ID) else None

    async def atransition(self, record: dict, expected: list[str], expires_ms: int | None,
                          file: bytes | None = None) -> str | None:
        self.moves.append((record["status"], expected))
        if self.record["status"] not in expected:
            return self.record["status"]
        self.record = record
        return None


class Admission:
    def __init__(self) -> None:
        self.released: list = []

    async def release_payment(self, client_id: str, consent_id: str, claim: str) -> None:
        self.released.append((client_id, consent_id, claim))


def _paid_call(status: int) -> Call:
    return Call(interaction_id="i", ts="t", started=0.0, method="POST", client_id=CLIENT, consent_id=CONSENT_ID,
                payment_claim=CLAIM, upstream=Upstream(status, [], b"{}"))


def test_a_payment_the_bank_accepted_makes_the_consent_consumed():
    consents, admission = Consents(), Admission()
    asyncio.run(ConsumeConsent(consents, admission).on_response(_paid_call(201)))
    assert consents.moves == [("Consumed", ["Authorised"])] and admission.released == []


def test_a_consent_revoked_while_the_bank_paid_stays_revoked():
    consents = Consents(Status.REVOKED)
    asyncio.run(ConsumeConsent(consents, Admission()).on_response(_paid_call(201)))
    assert consents.moves == [] and consents.record["status"] == "Revoked"


def test_a_payment_the_bank_refused_gives_the_claim_back():
    consents, admission = Consents(), Admission()
    asyncio.run(ConsumeConsent(consents, admission).on_response(_paid_call(400)))
    assert consents.moves == [] and admission.released == [(CLIENT, CONSENT_ID, CLAIM)]


@pytest.mark.parametrize("reason, released", [("payment.consent_mismatch", True), ("backend.timeout", False),
                                              ("backend.unanswered", False), ("error.unexpected", True)])
def test_an_aborted_payment_gives_the_claim_back_unless_the_bank_may_have_acted(reason, released):
    admission = Admission()
    asyncio.run(ConsumeConsent(Consents(), admission).on_abort(_paid_call(0), Refusal(reason)))
    assert admission.released == ([(CLIENT, CONSENT_ID, CLAIM)] if released else [])
