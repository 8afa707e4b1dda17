"""The sandbox bank's books: accounts, booked entries, running balances and domestic payments.

Records are rendered as full UK Open Banking v3.1 objects (nothing masked or trimmed) because cutting
them down to what a consent allows is the gateway's job, and it needs the whole record to prove it.
Payments are the only mutable state; with a state file they are appended as JSON lines and replayed
on start so a restarted bank still shows them.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

BANK_NAME = "Sandbox Bank plc"
BANK_BIC = "SBOXGB2L"
PAYMENT_STATUS = "AcceptedSettlementCompleted"


def money(pence: int) -> str:
    """Absolute amount as an OB amount string, e.g. -1234 -> "12.34"."""
    pence = abs(pence)
    return f"{pence // 100}.{pence % 100:02d}"


def parse_money(amount: str) -> int:
    """OB amount string -> pence; ValueError unless it is a plain number with at most two decimals."""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ValueError(f"not an amount: {amount!r}") from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"GBP amounts have at most two decimal places: {amount!r}")
    return int(value * 100)


def within(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    """since <= moment <= until, an end that is None being open: how query windows are read."""
    return (since is None or moment >= since) and (until is None or moment <= until)


def agent(bic: str, name: str) -> dict:
    """OB agent (bank) reference."""
    return {"SchemeName": "UK.OBIE.BICFI", "Identification": bic, "Name": name}


@dataclass(frozen=True)
class Card:
    scheme: str  # OB CardSchemeName: VISA, MasterCard, ...
    pan: str
    holder: str

    def instrument(self, authorisation: str) -> dict:
        return {
            "CardSchemeName": self.scheme,
            "AuthorisationType": authorisation,
            "Name": self.holder,
            "Identification": self.pan,
        }


@dataclass(frozen=True)
class Account:
    account_id: str
    customer_id: str
    sub_type: str  # CurrentAccount, Savings, CreditCard
    description: str
    nickname: str
    opened: datetime
    scheme: str  # UK.OBIE.SortCodeAccountNumber or UK.OBIE.PAN
    identification: str
    holder: str
    opening_balance: int  # pence at the start of the seeded history; negative means owed
    credit_limit: int = 0  # pence of arranged overdraft or card limit
    secondary_identification: str | None = None
    card: Card | None = None  # the card whose purchases post to this account
    currency: str = "GBP"

    def reference(self) -> dict:
        """How other parties name this account (OBCashAccount shape)."""
        ref = {"SchemeName": self.scheme, "Identification": self.identification, "Name": self.holder}
        if self.secondary_identification:
            ref["SecondaryIdentification"] = self.secondary_identification
        return ref

    def to_ob(self) -> dict:
        """Full OBAccount6 record."""
        return {
            "AccountId": self.account_id,
            "Status": "Enabled",
            "StatusUpdateDateTime": self.opened.isoformat(),
            "Currency": self.currency,
            "AccountType": "Personal",
            "AccountSubType": self.sub_type,
            "Description": self.description,
            "Nickname": self.nickname,
            "OpeningDate": self.opened.isoformat(),
            "Account": [self.reference()],
            "Servicer": {"SchemeName": "UK.OBIE.BICFI", "Identification": BANK_BIC},
        }


@dataclass
class Entry:
    """One booked transaction; `balance` and `seq` are maintained by the ledger."""

    transaction_id: str
    account_id: str
    booked: datetime
    amount: int  # signed pence: credits positive
    information: str
    reference: str
    bank_code: tuple[str, str]  # OB BankTransactionCode (Code, SubCode)
    proprietary_code: str  # the bank's own short code, e.g. DEB, FPO, BGC
    details: dict = field(default_factory=dict)  # further OB fields: MerchantDetails, CreditorAccount, ...
    statement: str | None = None
    balance: int = 0
    seq: int = 0

    def to_ob(self, currency: str) -> dict:
        """Full OBTransaction6 record."""
        record: dict[str, Any] = {
            "AccountId": self.account_id,
            "TransactionId": self.transaction_id,
            "TransactionReference": self.reference,
        }
        if self.statement:
            record["StatementReference"] = [self.statement]
        record |= {
            "CreditDebitIndicator": "Credit" if self.amount >= 0 else "Debit",
            "Status": "Booked",
            "TransactionMutability": "Immutable",
            "BookingDateTime": self.booked.isoformat(),
            "ValueDateTime": self.booked.isoformat(),
            "TransactionInformation": self.information,
            "Amount": {"Amount": money(self.amount), "Currency": currency},
            "BankTransactionCode": {"Code": self.bank_code[0], "SubCode": self.bank_code[1]},
            "ProprietaryBankTransactionCode": {"Code": self.proprietary_code, "Issuer": BANK_NAME},
            "Balance": {
                "Amount": {"Amount": money(self.balance), "Currency": currency},
                "CreditDebitIndicator": "Credit" if self.balance >= 0 else "Debit",
                "Type": "InterimBooked",
            },
        }
        return record | self.details


@dataclass(frozen=True)
class Payment:
    payment_id: str
    customer_id: str
    debtor_account_id: str
    consent_id: str
    initiation: dict
    created: datetime
    debit_transaction_id: str
    credit_transaction_id: str | None  # set when the creditor also banks here

    def to_ob(self, debtor: Account) -> dict:
        """Data part of OBWriteDomesticResponse5."""
        return {
            "DomesticPaymentId": self.payment_id,
            "ConsentId": self.consent_id,
            "CreationDateTime": self.created.isoformat(),
            "Status": PAYMENT_STATUS,
            "StatusUpdateDateTime": self.created.isoformat(),
            "ExpectedExecutionDateTime": self.created.isoformat(),
            "ExpectedSettlementDateTime": self.created.isoformat(),
            "Initiation": self.initiation,
            "Debtor": debtor.reference(),
        }

    def to_json(self) -> dict:
        return {
            "type": "domestic-payment",
            "payment_id": self.payment_id,
            "customer_id": self.customer_id,
            "debtor_account_id": self.debtor_account_id,
            "consent_id": self.consent_id,
            "initiation": self.initiation,
            "created": self.created.isoformat(),
            "debit_transaction_id": self.debit_transaction_id,
            "credit_transaction_id": self.credit_transaction_id,
        }

    @classmethod
    def from_json(cls, line: dict) -> Payment:
        return cls(
            payment_id=line["payment_id"],
            customer_id=line["customer_id"],
            debtor_account_id=line["debtor_account_id"],
            consent_id=line["consent_id"],
            initiation=line["initiation"],
            created=datetime.fromisoformat(line["created"]),
            debit_transaction_id=line["debit_transaction_id"],
            credit_transaction_id=line["credit_transaction_id"],
        )


class Rejected(Exception):
    """A payment the bank refuses; `code` is a UK.OBIE error code, `path` the offending field."""

    def __init__(self, code: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.path = code, message, path


def _normalise(identification: str) -> str:
    return identification.replace(" ", "").replace("-", "")


class Ledger:
    """Accounts and their entries in booking order, each entry carrying the balance after it."""

    def __init__(
        self,
        accounts: Iterable[Account],
        entries: Iterable[Entry],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._accounts = {account.account_id: account for account in accounts}
        self._entries: dict[str, list[Entry]] = {account_id: [] for account_id in self._accounts}
        self._payments: dict[str, Payment] = {}
        self._by_consent: dict[tuple[str, str], Payment] = {}
        self._seq = itertools.count()
        self._clock = clock
        self._state_file: Path | None = None
        # Handlers run on one event loop, but sync callers (threads) must not interleave check and post.
        self._lock = threading.Lock()
        for entry in sorted(entries, key=lambda e: e.booked):
            self._post(entry)

    # -- reading -------------------------------------------------------------------------------

    def accounts_of(self, customer_id: str) -> list[Account]:
        return [a for a in self._accounts.values() if a.customer_id == customer_id]

    def owned(self, customer_id: str, account_id: str) -> Account | None:
        account = self._accounts.get(account_id)
        return account if account is not None and account.customer_id == customer_id else None

    def entries(self, account_id: str) -> list[Entry]:
        """Entries oldest first."""
        return list(self._entries[account_id])

    def booked_between(self, account_id: str, since: datetime | None, until: datetime | None) -> list[Entry]:
        """Entries oldest first, booked within since..until (both included; None leaves that end open)."""
        return [entry for entry in self._entries[account_id] if within(entry.booked, since, until)]

    def balance(self, account_id: str) -> int:
        entries = self._entries[account_id]
        return entries[-1].balance if entries else self._accounts[account_id].opening_balance

    def balance_before(self, account_id: str, moment: datetime) -> int:
        """The booked balance just before `moment`: a statement's opening balance."""
        entries = self._entries[account_id]
        at = bisect.bisect_left(entries, moment, key=lambda e: e.booked)
        return entries[at - 1].balance if at else self._accounts[account_id].opening_balance

    def available(self, account_id: str) -> int:
        """Booked balance plus any arranged overdraft or card limit: what a payment may spend."""
        return self.balance(account_id) + self._accounts[account_id].credit_limit

    def balance_time(self, account_id: str) -> datetime:
        """When the balance last changed (the account's opening date if it never has)."""
        entries = self._entries[account_id]
        return entries[-1].booked if entries else self._accounts[account_id].opened

    def payment(self, customer_id: str, payment_id: str) -> Payment | None:
        payment = self._payments.get(payment_id)
        return payment if payment is not None and payment.customer_id == customer_id else None

    def account(self, account_id: str) -> Account:
        return self._accounts[account_id]

    # -- writing -------------------------------------------------------------------------------

    def pay(self, debtor: Account, consent_id: str, initiation: dict) -> Payment:
        """Settle a domestic payment from `debtor` at once, or raise Rejected.

        A consent pays once: repeating the identical request returns the original payment (a retry
        must not debit twice); reusing the consent for anything else is refused.
        """
        with self._lock:
            previous = self._by_consent.get((debtor.customer_id, consent_id))
            if previous is not None:
                if previous.debtor_account_id == debtor.account_id and previous.initiation == initiation:
                    return previous
                raise Rejected("UK.OBIE.Resource.InvalidConsentStatus", "consent already used", "Data.ConsentId")
            self._check(debtor, initiation)
            creditor = self._internal_creditor(initiation["CreditorAccount"], debtor)
            payment = Payment(
                payment_id=f"dp-{uuid.uuid4().hex}",
                customer_id=debtor.customer_id,
                debtor_account_id=debtor.account_id,
                consent_id=consent_id,
                initiation=initiation,
                created=self._clock().replace(microsecond=0),
                debit_transaction_id=str(uuid.uuid4()),
                credit_transaction_id=None if creditor is None else str(uuid.uuid4()),
            )
            if self._state_file is not None:
                with self._state_file.open("ab") as f:
                    f.write(orjson.dumps(payment.to_json()) + b"\n")
            self._apply(payment)
            return payment

    def use_state_file(self, path: Path) -> None:
        """Replay payments recorded in `path` (if it exists) and append new ones to it."""
        with self._lock:
            if path.exists():
                for number, line in enumerate(path.read_bytes().splitlines(), 1):
                    if not line.strip():
                        continue
                    payment = Payment.from_json(orjson.loads(line))
                    if payment.debtor_account_id not in self._accounts:
                        raise ValueError(f"{path}:{number}: unknown account {payment.debtor_account_id!r}")
                    self._apply(payment)
            self._state_file = path

    def _check(self, debtor: Account, initiation: dict) -> None:
        stated = initiation.get("DebtorAccount")
        if stated is not None and (
            stated.get("SchemeName") != debtor.scheme
            or _normalise(str(stated.get("Identification", ""))) != _normalise(debtor.identification)
        ):
            raise Rejected("UK.OBIE.Field.Invalid", "debtor account does not match", "Data.Initiation.DebtorAccount")
        amount = initiation["InstructedAmount"]
        if amount["Currency"] != debtor.currency:
            raise Rejected(
                "UK.OBIE.Unsupported.Currency",
                f"account is held in {debtor.currency}",
                "Data.Initiation.InstructedAmount.Currency",
            )
        if parse_money(amount["Amount"]) > self.available(debtor.account_id):
            # Not in the v3.1.11 namespaced list, which has no funds code; it is the code v3 banks use (the gateway
            # shows it to TPPs as OBGW.Rules.InsufficientFunds).
            raise Rejected(
                "UK.OBIE.Rules.InsufficientFunds",
                "insufficient funds",
                "Data.Initiation.InstructedAmount.Amount",
            )

    def _internal_creditor(self, reference: dict, debtor: Account) -> Account | None:
        wanted = (reference.get("SchemeName"), _normalise(str(reference.get("Identification", ""))))
        for account in self._accounts.values():
            if account is not debtor and (account.scheme, _normalise(account.identification)) == wanted:
                return account
        return None

    def _apply(self, payment: Payment) -> None:
        initiation = payment.initiation
        debtor = self._accounts[payment.debtor_account_id]
        pence = parse_money(initiation["InstructedAmount"]["Amount"])
        remittance = initiation.get("RemittanceInformation") or {}
        reference = remittance.get("Reference") or initiation["EndToEndIdentification"]
        creditor_ref = initiation["CreditorAccount"]
        creditor = self._internal_creditor(creditor_ref, debtor)
        debit_details = {"CreditorAccount": creditor_ref}
        if creditor is not None:
            debit_details["CreditorAgent"] = agent(BANK_BIC, BANK_NAME)
        self._post(
            Entry(
                transaction_id=payment.debit_transaction_id,
                account_id=debtor.account_id,
                booked=payment.created,
                amount=-pence,
                information=f"{creditor_ref['Name']} {reference}"[:500],
                reference=initiation["EndToEndIdentification"],
                bank_code=("IssuedCreditTransfers", "DomesticCreditTransfer"),
                proprietary_code="FPO",
                details=debit_details,
            )
        )
        if creditor is not None and payment.credit_transaction_id is not None:
            self._post(
                Entry(
                    transaction_id=payment.credit_transaction_id,
                    account_id=creditor.account_id,
                    booked=payment.created,
                    amount=pence,
                    information=f"{debtor.holder} {reference}"[:500],
                    reference=initiation["EndToEndIdentification"],
                    bank_code=("ReceivedCreditTransfers", "DomesticCreditTransfer"),
                    proprietary_code="FPI",
                    details={"DebtorAgent": agent(BANK_BIC, BANK_NAME), "DebtorAccount": debtor.reference()},
                )
            )
        self._payments[payment.payment_id] = payment
        self._by_consent[(payment.customer_id, payment.consent_id)] = payment

    def _post(self, entry: Entry) -> None:
        """Insert in booking order and recompute the running balance from there on."""
        entry.seq = next(self._seq)
        entries = self._entries[entry.account_id]
        at = bisect.bisect_right(entries, (entry.booked, entry.seq), key=lambda e: (e.booked, e.seq))
        entries.insert(at, entry)
        balance = entries[at - 1].balance if at else self._accounts[entry.account_id].opening_balance
        for later in entries[at:]:
            balance += later.amount
            later.balance = balance
