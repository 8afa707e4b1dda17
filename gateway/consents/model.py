"""Consents as data: the status enum, the allowed transitions (a table, checked by one function) and the record.

UK OB v3.1.11 Account and Transaction API, "Consent Status": AwaitingAuthorisation → Authorised | Rejected;
Authorised → Revoked. A payment consent (Payment Initiation API) ends Consumed once used; a file-payment consent
starts AwaitingUpload and awaits authorisation once its file is uploaded. Time is never a stored
status: an authorised consent expires at its `ExpirationDateTime` and one never authorised lapses at `authorise_by`
(it then reads as Rejected), both computed whenever the consent is read, so they take effect to the millisecond.

What is computed here, on the worker's clock, is what people are shown (the status, the dashboard's revoke button)
and whether a consent may still be authorised. Whether its tokens may be used is not decided here: the Admit script
and the authorization server ask one Lua function, on Redis's clock (store/scripts/consent_rules.lua).
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson


class Status(enum.StrEnum):
    AWAITING_UPLOAD = "AwaitingUpload"
    AWAITING_AUTHORISATION = "AwaitingAuthorisation"
    AUTHORISED = "Authorised"
    REJECTED = "Rejected"
    REVOKED = "Revoked"
    CONSUMED = "Consumed"


class Kind(enum.StrEnum):
    """What a consent lets the TPP do, and the OAuth scope that must accompany it."""
    ACCOUNT_ACCESS = "account-access"
    FUNDS_CONFIRMATION = "funds-confirmation"
    DOMESTIC_PAYMENT = "domestic-payment"
    DOMESTIC_SCHEDULED_PAYMENT = "domestic-scheduled-payment"
    DOMESTIC_STANDING_ORDER = "domestic-standing-order"
    INTERNATIONAL_PAYMENT = "international-payment"
    INTERNATIONAL_SCHEDULED_PAYMENT = "international-scheduled-payment"
    INTERNATIONAL_STANDING_ORDER = "international-standing-order"
    DOMESTIC_VRP = "domestic-vrp"
    FILE_PAYMENT = "file-payment"

    @property
    def scope(self) -> str:
        return _SCOPES.get(self, "payments")

    @property
    def is_payment(self) -> bool:
        return self.scope == "payments"

    @property
    def names_its_account(self) -> bool:
        """The consent names the one account it is for (CBPII: DebtorAccount): the customer confirms, not chooses."""
        return self is Kind.FUNDS_CONFIRMATION


_SCOPES = {Kind.ACCOUNT_ACCESS: "accounts", Kind.FUNDS_CONFIRMATION: "fundsconfirmations"}


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.AWAITING_UPLOAD: frozenset({Status.AWAITING_AUTHORISATION}),
    Status.AWAITING_AUTHORISATION: frozenset({Status.AUTHORISED, Status.REJECTED, Status.REVOKED}),
    Status.AUTHORISED: frozenset({Status.REVOKED, Status.CONSUMED}),
    Status.REJECTED: frozenset(),
    Status.REVOKED: frozenset(),
    Status.CONSUMED: frozenset(),
}


def sources_of(target: Status) -> frozenset[Status]:
    """The statuses from which `target` may be reached: what a compare-and-set transition expects to find."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


@dataclass(frozen=True, slots=True)
class Consent:
    consent_id: str
    client_id: str
    kind: Kind
    status: Status
    created: str                  # ISO 8601, as the UK OB CreationDateTime
    status_updated: str
    permissions: tuple[str, ...]
    expires: str | None           # ExpirationDateTime as given, or None (open-ended)
    transaction_from: str | None
    transaction_to: str | None
    customer_id: str | None       # set when the customer authorises; stored sealed (audit/customers.py)
    accounts: tuple[str, ...]     # the AccountIds the customer selected
    initiation: dict | None = None  # a payment consent's Initiation, as given
    risk: dict | None = None        # ... and its Risk: the payment must repeat both exactly
    debtor_account: dict | None = None  # a funds-confirmation consent's DebtorAccount, as given
    terms: dict | None = None       # a payment consent's Data as asked (Initiation, ControlParameters, Permission...)
    grant_id: str | None = None   # the one authorisation whose tokens this consent accepts
    deleted: bool = False         # revoked by the TPP's DELETE: gone for the TPP, kept for the customer's history
    authorise_by: str | None = None  # an AwaitingAuthorisation consent lapses at this time (Rejected from then on)
    authorised_at: str | None = None  # when the customer agreed

    def expired(self, now: datetime | None = None) -> bool:
        if self.expires is None:
            return False
        return datetime.fromisoformat(self.expires) <= (now or datetime.now(timezone.utc))

    def lapsed(self, now: datetime | None = None) -> bool:
        """Never authorised in the time allowed: from then on it reads as Rejected and can no longer be authorised."""
        return (self.status in (Status.AWAITING_UPLOAD, Status.AWAITING_AUTHORISATION) and self.authorise_by is not None
                and datetime.fromisoformat(self.authorise_by) <= (now or datetime.now(timezone.utc)))

    def current(self, now: datetime | None = None) -> Consent:
        """The consent as of now: a lapsed one is Rejected, at the moment it lapsed (computed, no sweep)."""
        if self.lapsed(now):
            return dataclasses.replace(self, status=Status.REJECTED, status_updated=self.authorise_by or self.created)
        return self

    @property
    def shown_status(self) -> str:
        """The status as people read it: an authorised consent past its ExpirationDateTime is Expired."""
        return "Expired" if self.status is Status.AUTHORISED and self.expired() else str(self.status)

    @property
    def revocable(self) -> bool:
        """Offered for withdrawal on the dashboard: shown as Authorised (not past its ExpirationDateTime)."""
        return self.shown_status == Status.AUTHORISED


def from_record(record: dict) -> Consent:
    """The stored record as a Consent, as it stands now (see `Consent.current`)."""
    return _from_record(record).current()


def _from_record(record: dict) -> Consent:
    return Consent(
        consent_id=record["consent_id"], client_id=record["client_id"], kind=Kind(record["kind"]),
        status=Status(record["status"]), created=record["created"], status_updated=record["status_updated"],
        permissions=tuple(record.get("permissions") or ()), expires=record.get("expires"),
        transaction_from=record.get("transaction_from"), transaction_to=record.get("transaction_to"),
        customer_id=record.get("customer_id"), accounts=tuple(record.get("accounts") or ()),
        initiation=record.get("initiation"), risk=record.get("risk"), debtor_account=record.get("debtor_account"),
        terms=record.get("terms"),
        grant_id=record.get("grant_id"),
        deleted=bool(record.get("deleted")), authorise_by=record.get("authorise_by"),
        authorised_at=record.get("authorised_at"))


def to_record(consent: Consent) -> dict:
    return {
        "consent_id": consent.consent_id, "client_id": consent.client_id, "kind": str(consent.kind),
        "status": str(consent.status), "created": consent.created, "status_updated": consent.status_updated,
        "permissions": list(consent.permissions), "expires": consent.expires,
        "transaction_from": consent.transaction_from, "transaction_to": consent.transaction_to,
        "customer_id": consent.customer_id, "accounts": list(consent.accounts), "initiation": consent.initiation,
        "risk": consent.risk, "debtor_account": consent.debtor_account, "terms": consent.terms,
        "grant_id": consent.grant_id, "deleted": consent.deleted, "authorise_by": consent.authorise_by,
        "authorised_at": consent.authorised_at, "payment_digest": payment_digest(consent.initiation, consent.risk),
        "instructed_amount": instructed_amount(consent.initiation),
    }


def expires_ms(consent: Consent) -> int | None:
    return None if consent.expires is None else int(datetime.fromisoformat(consent.expires).timestamp() * 1000)


def payment_digest(initiation: dict | None, risk: dict | None) -> str:
    """What a payment must repeat exactly (Payment Initiation API: Initiation and Risk as in the consent), as the
    SHA-256 of its canonical JSON, so the Admit script can compare it without reading JSON."""
    if initiation is None:
        return ""
    return hashlib.sha256(orjson.dumps({"Initiation": initiation, "Risk": risk or {}},
                                       option=orjson.OPT_SORT_KEYS)).hexdigest()


def instructed_amount(initiation: dict | None) -> str:
    """A payment consent's InstructedAmount as "<Amount> <Currency>" (what its funds check asks the bank about);
    "" for a consent without one (a standing order, a VRP, a file, an account-access consent)."""
    amount = (initiation or {}).get("InstructedAmount")
    return f"{amount['Amount']} {amount['Currency']}" if isinstance(amount, dict) else ""
