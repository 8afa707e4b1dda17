"""The sandbox bank's books: accounts, booked entries and running balances.

Records are rendered as full UK Open Banking v3.1 objects (nothing masked or trimmed) because cutting
them down to what a consent allows is the gateway's job, and it needs the whole record to prove it.
The books change only through payments (`gateway.sandbox.orders`), which post here under `lock` and may
ask to be woken at a future moment (`at`) to execute a scheduled payment or a standing order's next
instalment: every read first runs whatever has fallen due, so the books are always as of now.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

BANK_NAME = "Sandbox Bank plc"
BANK_BIC = "SBOXGB2L"


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


class Rejected(Exception):
    """A payment the bank refuses; `code` is an OB error code, `path` the offending field."""

    def __init__(self, code: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.path = code, message, path


def _normalise(identification: str) -> str:
    return identification.replace(" ", "").replace("-", "")


def names(reference: dict, account: Account) -> bool:
    """Whether an OB account reference (SchemeName and Identification) is `account`; spaces and dashes aside."""
    return (reference.get("SchemeName") == account.scheme
            and _normalise(str(reference.get("Identification", ""))) == _normalise(account.identification))


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
        self._seq = itertools.count()
        self._clock = clock
        self._timers: list[tuple[datetime, int, Callable[[], None]]] = []
        self._catching_up = False
        # Handlers run on one event loop, but sync callers (threads) must not interleave check and post; re-entrant
        # so that a payment holding it may read the books.
        self.lock = threading.RLock()
        for entry in sorted(entries, key=lambda e: e.booked):
            self.post(entry)

    def now(self) -> datetime:
        """The bank's time, to the second (what payments are stamped with)."""
        return self._clock().replace(microsecond=0)

    # -- reading -------------------------------------------------------------------------------

    def accounts_of(self, customer_id: str) -> list[Account]:
        return [a for a in self._accounts.values() if a.customer_id == customer_id]

    def owned(self, customer_id: str, account_id: str) -> Account | None:
        account = self._accounts.get(account_id)
        return account if account is not None and account.customer_id == customer_id else None

    def account(self, account_id: str) -> Account:
        return self._accounts[account_id]

    def held_here(self, reference: dict, besides: Account) -> Account | None:
        """The account here that an OB account reference names, other than `besides` (a payment's creditor)."""
        return next((a for a in self._accounts.values() if a is not besides and names(reference, a)), None)

    def entries(self, account_id: str) -> list[Entry]:
        """Entries oldest first."""
        self.catch_up()
        return list(self._entries[account_id])

    def booked_between(self, account_id: str, since: datetime | None, until: datetime | None) -> list[Entry]:
        """Entries oldest first, booked within since..until (both included; None leaves that end open)."""
        self.catch_up()
        return [entry for entry in self._entries[account_id] if within(entry.booked, since, until)]

    def balance(self, account_id: str) -> int:
        self.catch_up()
        entries = self._entries[account_id]
        return entries[-1].balance if entries else self._accounts[account_id].opening_balance

    def balance_before(self, account_id: str, moment: datetime) -> int:
        """The booked balance just before `moment`: a statement's opening balance."""
        self.catch_up()
        entries = self._entries[account_id]
        at = bisect.bisect_left(entries, moment, key=lambda e: e.booked)
        return entries[at - 1].balance if at else self._accounts[account_id].opening_balance

    def available(self, account_id: str) -> int:
        """Booked balance plus any arranged overdraft or card limit: what a payment may spend (and what /balances
        shows as InterimAvailable)."""
        return self.balance(account_id) + self._accounts[account_id].credit_limit

    def balance_time(self, account_id: str) -> datetime:
        """When the balance last changed (the account's opening date if it never has)."""
        self.catch_up()
        entries = self._entries[account_id]
        return entries[-1].booked if entries else self._accounts[account_id].opened

    # -- writing -------------------------------------------------------------------------------

    def at(self, moment: datetime, action: Callable[[], None]) -> None:
        """Run `action` under the lock at the first read of the books at or after `moment`."""
        with self.lock:
            heapq.heappush(self._timers, (moment, next(self._seq), action))

    def catch_up(self) -> None:
        """Run the actions that have fallen due, oldest first (those they add too, if due); reads do this first."""
        if not (self._timers and self._timers[0][0] <= self._clock()):
            return
        with self.lock:
            if self._catching_up:  # an action reading the books: it already sees all that is due before it
                return
            self._catching_up = True
            try:
                while self._timers and self._timers[0][0] <= self._clock():
                    heapq.heappop(self._timers)[2]()
            finally:
                self._catching_up = False

    def post(self, entry: Entry) -> None:
        """Book an entry: insert it in booking order and recompute the running balance from there on."""
        with self.lock:
            entry.seq = next(self._seq)
            entries = self._entries[entry.account_id]
            at = bisect.bisect_right(entries, (entry.booked, entry.seq), key=lambda e: (e.booked, e.seq))
            entries.insert(at, entry)
            balance = entries[at - 1].balance if at else self._accounts[entry.account_id].opening_balance
            for later in entries[at:]:
                balance += later.amount
                later.balance = balance
