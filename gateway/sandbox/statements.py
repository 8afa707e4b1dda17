"""Monthly statements, worked out from the books whenever they are read.

Each account has a statement per whole calendar month of the seeded history (`MONTHS` of them, the history
starting on the first one's first day). Nothing is stored: the figures are summed from the ledger's entries, so they
always agree with the transactions, even when a payment lands inside a statement's period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.sandbox import pdf
from gateway.sandbox.ledger import BANK_NAME, Account, Entry, Ledger, money

MONTHS = 6  # statements per account, and whole months of seeded history


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return month_start(start + timedelta(days=32))


def months(anchor: datetime) -> list[datetime]:
    """First instants of the `MONTHS` whole calendar months before the anchor's month, oldest first."""
    starts = [month_start(anchor)]
    for _ in range(MONTHS):
        starts.insert(0, month_start(starts[0] - timedelta(days=1)))
    return starts[:-1]


def reference(account: Account, moment: datetime) -> str:
    """StatementReference of the monthly statement that covers `moment`, as its transactions carry it."""
    return f"ST{moment:%Y%m}-{account.identification[-4:]}"


def _signed(pence: int, currency: str) -> str:
    """A figure as a statement prints it, e.g. "-1,234.56 GBP"."""
    return f"{'-' if pence < 0 else ''}{abs(pence) // 100:,}.{abs(pence) % 100:02d} {currency}"


def _amount(kind: str, pence: int, currency: str, indicator: str | None = None) -> dict:
    return {
        "CreditDebitIndicator": indicator or ("Credit" if pence >= 0 else "Debit"),
        "Type": kind,
        "Amount": {"Amount": money(pence), "Currency": currency},
    }


@dataclass(frozen=True)
class Figures:
    opening: int
    credits: int
    debits: int  # a positive sum of pence paid out
    interest: int

    @property
    def closing(self) -> int:
        return self.opening + self.credits - self.debits


@dataclass(frozen=True)
class Statement:
    """One account's statement for the calendar month starting at `start`."""

    account: Account
    start: datetime

    @property
    def statement_id(self) -> str:
        return f"stmt-{self.account.account_id}-{self.start:%Y%m}"

    @property
    def next_start(self) -> datetime:
        """Exclusive end; also when the statement is issued."""
        return _next_month(self.start)

    @property
    def end(self) -> datetime:
        """EndDateTime: the month's last second (entries are booked to the second)."""
        return self.next_start - timedelta(seconds=1)

    @property
    def filename(self) -> str:
        return f"statement-{self.account.account_id}-{self.start:%Y-%m}.pdf"

    def entries(self, ledger: Ledger) -> list[Entry]:
        return ledger.booked_between(self.account.account_id, self.start, self.end)

    def figures(self, ledger: Ledger) -> Figures:
        entries = self.entries(ledger)
        amounts = [entry.amount for entry in entries]
        interest = sum(entry.amount for entry in entries if entry.proprietary_code == "INT")
        return Figures(
            opening=ledger.balance_before(self.account.account_id, self.start),
            credits=sum(a for a in amounts if a > 0),
            debits=-sum(a for a in amounts if a < 0),
            interest=interest,
        )

    def to_ob(self, ledger: Ledger) -> dict:
        """Full OBStatement2 record."""
        figures, currency = self.figures(ledger), self.account.currency
        amounts = [
            _amount("UK.OBIE.StartingBalance", figures.opening, currency),
            _amount("UK.OBIE.ClosingBalance", figures.closing, currency),
            _amount("UK.OBIE.TotalCredits", figures.credits, currency, "Credit"),
            _amount("UK.OBIE.TotalDebits", figures.debits, currency, "Debit"),
        ]
        if self.account.credit_limit:
            amounts.append(_amount("UK.OBIE.CreditLimit", self.account.credit_limit, currency))
        record: dict[str, Any] = {
            "AccountId": self.account.account_id,
            "StatementId": self.statement_id,
            "StatementReference": reference(self.account, self.start),
            "Type": "RegularPeriodic",
            "StartDateTime": self.start.isoformat(),
            "EndDateTime": self.end.isoformat(),
            "CreationDateTime": self.next_start.isoformat(),
            "StatementDescription": [f"{self.account.description}, {self.start:%B %Y}"],
            "StatementAmount": amounts,
        }
        if figures.interest:
            record["StatementInterest"] = [_amount("UK.OBIE.Total", figures.interest, currency, "Credit")]
        return record

    def pdf(self, ledger: Ledger, customer_name: str) -> bytes:
        """The statement file: who, which account, the period and its figures, on one page."""
        account, figures = self.account, self.figures(ledger)
        if account.scheme == "UK.OBIE.PAN":  # a file the gateway cannot mask: never the full card number
            number = f"card ending {account.identification[-4:]}"
        else:
            code = account.identification
            number = f"sort code {code[0:2]}-{code[2:4]}-{code[4:6]}, account number {code[6:]}"
        lines = [
            f"Customer: {customer_name}",
            f"Account: {account.description} ({account.holder})",
            f"Account details: {number}",
            f"Period: {self.start:%d %B %Y} to {self.end:%d %B %Y}",
            f"Statement reference: {reference(account, self.start)}",
            "",
            f"Opening balance: {_signed(figures.opening, account.currency)}",
            f"Money in: {_signed(figures.credits, account.currency)}",
            f"Money out: {_signed(figures.debits, account.currency)}",
            f"Closing balance: {_signed(figures.closing, account.currency)}",
        ]
        return pdf.text_page(f"{BANK_NAME}: statement", lines, BANK_NAME, self.next_start)


def statements(account: Account, anchor: datetime) -> list[Statement]:
    """The account's monthly statements, newest first; none for months before it was opened."""
    return [Statement(account, start) for start in reversed(months(anchor)) if _next_month(start) > account.opened]
