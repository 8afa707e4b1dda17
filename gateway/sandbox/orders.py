"""Payment orders: one accepted payment request of any kind, with the payments it has made so far.

An order is a domestic or international payment, scheduled payment or standing order, a VRP payment or a file of
payments, as it was asked for, with its executions: one for a payment, one for a scheduled payment once its date
comes, one per standing-order instalment, one per payment in a file, each booked or refused for want of funds. From
these come its status, its status history (payment-details) and how it is written in the state file. Placing and
executing orders is `backoffice`'s.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TypeVar

from gateway.sandbox import fx
from gateway.sandbox.ledger import parse_money
from gateway.sandbox.schedule import payment_dates

IMMEDIATE, SCHEDULED, STANDING, FILE = "immediate", "scheduled", "standing-order", "file"
_TRANSFER = ("IssuedCreditTransfers", "DomesticCreditTransfer")
_ABROAD = ("IssuedCreditTransfers", "CrossBorderCreditTransfer")
_STANDING_ORDER = ("IssuedCreditTransfers", "StandingOrder")
T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    name: str  # as the state file types it
    prefix: str  # of its ids
    timing: str  # IMMEDIATE, SCHEDULED, STANDING or FILE (at once, or on its RequestedExecutionDateTime)
    code: tuple[str, str]  # OB BankTransactionCode of its debits
    proprietary: str  # the bank's own code for them
    international: bool = False


KINDS = {kind.name: kind for kind in (
    Kind("domestic-payment", "dp", IMMEDIATE, _TRANSFER, "FPO"),
    Kind("domestic-scheduled-payment", "dsp", SCHEDULED, _TRANSFER, "FPO"),
    Kind("domestic-standing-order", "dso", STANDING, _STANDING_ORDER, "SO"),
    Kind("international-payment", "ip", IMMEDIATE, _ABROAD, "IPO", international=True),
    Kind("international-scheduled-payment", "isp", SCHEDULED, _ABROAD, "IPO", international=True),
    Kind("international-standing-order", "iso", STANDING, _STANDING_ORDER, "SO", international=True),
    Kind("domestic-vrp", "vrp", IMMEDIATE, _TRANSFER, "FPO"),
    Kind("file-payment", "fp", FILE, _TRANSFER, "FPO"),
)}
VRP = KINDS["domestic-vrp"]
FILE_PAYMENT = KINDS["file-payment"]


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _with_last(items: Iterable[T]) -> Iterator[tuple[T, bool]]:
    """Each item, and whether it is the last."""
    iterator = iter(items)
    try:
        previous = next(iterator)
    except StopIteration:
        return
    for item in iterator:
        yield previous, False
        previous = item
    yield previous, True


@dataclass(frozen=True)
class Execution:
    """One payment of an order, booked or refused."""

    number: int  # 1 for a payment; the instalment's number for a standing order, the payment's in a file
    at: datetime  # booked (or refused)
    amount: dict  # instructed: OB Amount and Currency
    pence: int  # debited for it, in pounds
    fee: int = 0  # debited besides, the bank's fee
    rate: dict | None = None  # the ExchangeRateInformation it converted at
    debit_id: str | None = None  # None: refused for want of funds
    credit_id: str | None = None  # the creditor banks here
    fee_id: str | None = None

    @property
    def booked(self) -> bool:
        return self.debit_id is not None

    def to_json(self) -> dict:
        return asdict(self) | {"at": self.at.isoformat()}

    @classmethod
    def from_json(cls, line: dict) -> Execution:
        return cls(**({name: line[name] for name in cls.__dataclass_fields__} | {"at": moment(line["at"])}))


@dataclass
class Order:
    kind: Kind
    order_id: str
    customer_id: str
    debtor_account_id: str
    request: dict  # {"Data": ..., "Risk": ...} as asked, and a file payment's "File" (its content, read)
    created: datetime
    key: str | None = None  # the x-idempotency-key of a VRP payment
    executions: list[Execution] = field(default_factory=list)

    @property
    def data(self) -> dict:
        return self.request["Data"]

    @property
    def consent_id(self) -> str:
        return str(self.data["ConsentId"])

    @property
    def initiation(self) -> dict:
        return self.data["Initiation"]

    @property
    def instruction(self) -> dict:
        """What is paid, to whom: a VRP payment's Instruction, any other's Initiation."""
        return self.data["Instruction"] if self.kind is VRP else self.initiation

    def lines(self) -> list[dict]:
        """The payments of a file payment's file (domestic payment initiations)."""
        return list(self.request["File"]["Data"]["DomesticPayments"]) if self.kind is FILE_PAYMENT else []

    def instruction_for(self, number: int) -> dict:
        """What the order's `number`th payment pays, to whom: a file's payment, else the order's instruction."""
        return self.lines()[number - 1] if self.kind is FILE_PAYMENT else self.instruction

    def amounts(self) -> list[tuple[str, dict]]:
        """(path, OB amount) of each amount the request names."""
        if self.kind is VRP:
            return [("Data.Instruction.InstructedAmount", self.instruction["InstructedAmount"])]
        if self.kind is FILE_PAYMENT:
            return [(f"File.Data.DomesticPayments.{index}.InstructedAmount", line["InstructedAmount"])
                    for index, line in enumerate(self.lines())]
        names = ("FirstPaymentAmount", "RecurringPaymentAmount", "FinalPaymentAmount", "InstructedAmount")
        return [(f"Data.Initiation.{name}", self.initiation[name]) for name in names if name in self.initiation]

    def funds_path(self) -> str:
        """Where a refusal for want of funds points: the (first) amount, or a file's ControlSum."""
        return "Data.Initiation.ControlSum" if self.kind is FILE_PAYMENT else f"{self.amounts()[0][0]}.Amount"

    def reference(self, number: int = 1) -> str:
        """How the `number`th payment is referred to in the books: its remittance reference (a file payment's, else
        the file's), the standing order's Reference, else its end-to-end id."""
        what = self.instruction_for(number)
        remittance = what.get("RemittanceInformation") or self.initiation.get("RemittanceInformation") or {}
        return str(remittance.get("Reference") or self.initiation.get("Reference")
                   or what.get("EndToEndIdentification") or self.order_id)

    def instalments(self) -> Iterator[tuple[datetime, dict]]:
        """(due, OB amount) of each payment the order makes, in order; without end for an open standing order."""
        if self.kind.timing == IMMEDIATE:
            return iter([(self.created, self.instruction["InstructedAmount"])])
        if self.kind.timing == SCHEDULED:
            return iter([(moment(self.initiation["RequestedExecutionDateTime"]), self.initiation["InstructedAmount"])])
        if self.kind.timing == FILE:
            when = self.initiation.get("RequestedExecutionDateTime")
            return iter([(moment(when) if when else self.created, line["InstructedAmount"]) for line in self.lines()])
        return self._standing_order()

    def _standing_order(self) -> Iterator[tuple[datetime, dict]]:
        initiation = self.initiation
        recurring_at = initiation.get("RecurringPaymentDateTime")
        dates = payment_dates(initiation["Frequency"], moment(initiation["FirstPaymentDateTime"]),
                              moment(recurring_at) if recurring_at else None)
        if "FinalPaymentDateTime" in initiation:
            final = moment(initiation["FinalPaymentDateTime"])
            dates = itertools.chain(itertools.takewhile(lambda when: when < final, dates), [final])
        if "NumberOfPayments" in initiation:
            dates = itertools.islice(dates, int(initiation["NumberOfPayments"]))
        first = initiation.get("FirstPaymentAmount") or initiation["InstructedAmount"]
        recurring = initiation.get("RecurringPaymentAmount") or first
        final_amount = initiation.get("FinalPaymentAmount") or recurring
        for number, (when, last) in enumerate(_with_last(dates), 1):
            yield when, first if number == 1 else final_amount if last else recurring

    def instalment(self, number: int) -> tuple[datetime, dict] | None:
        return next(itertools.islice(self.instalments(), number - 1, None), None)

    def status(self) -> str:
        """Status of the payment resource (its kind's OB enum): a scheduled payment or a file is pending until it is
        executed, then completed if it paid anything."""
        if self.kind.timing == IMMEDIATE:
            return "AcceptedSettlementCompleted"
        if self.kind.timing == STANDING or any(done.booked for done in self.executions):
            return "InitiationCompleted"
        return "InitiationFailed" if self.executions else "InitiationPending"

    def status_time(self) -> datetime:
        return self.executions[-1].at if self.kind.timing in (SCHEDULED, FILE) and self.executions else self.created

    def rate(self) -> dict:
        """ExchangeRateInformation of an international payment: what it converted at, else what it will."""
        found = self.executions[0].rate if self.executions else None
        return found or fx.quote(self.initiation, self.created)

    def payment_status(self) -> list[dict]:
        """OB PaymentStatus history, oldest first: received (or pending execution), then each execution."""
        local = self.instruction.get("LocalInstrument")

        def status(name: str, at: datetime, transaction: str, detail: str, reason: str | None = None) -> dict:
            about = {"LocalInstrument": local} if local else {}
            about["Status"] = detail
            if reason:
                about |= {"StatusReason": "ProprietaryRejection", "StatusReasonDescription": reason}
            return {"PaymentTransactionId": transaction, "Status": name, "StatusUpdateDateTime": at.isoformat(),
                    "StatusDetail": about}

        opened = {IMMEDIATE: ("Received", "Received"), SCHEDULED: ("Pending", "Awaiting execution"),
                  FILE: ("Pending", "Awaiting execution"), STANDING: ("Accepted", "Standing order set up")}[
                      self.kind.timing]
        history = [status(opened[0], self.created, self.order_id, opened[1])]
        for done in self.executions:
            if done.debit_id is not None:
                history.append(status("AcceptedSettlementCompleted", done.at, done.debit_id, f"Payment {done.number} "
                                      "booked"))
            else:
                history.append(status("Rejected", done.at, f"{self.order_id}-{done.number}",
                                      f"Payment {done.number} refused", "Insufficient funds"))
        return history

    def to_json(self) -> dict:
        line = {"type": self.kind.name, "payment_id": self.order_id, "customer_id": self.customer_id,
                "debtor_account_id": self.debtor_account_id, "consent_id": self.consent_id, "request": self.request,
                "created": self.created.isoformat(), "executions": [done.to_json() for done in self.executions]}
        return line | ({"key": self.key} if self.key else {})

    @classmethod
    def from_json(cls, line: dict) -> Order:
        created = moment(line["created"])
        if "request" in line:
            request, executions = line["request"], [Execution.from_json(done) for done in line["executions"]]
        else:  # a domestic payment as the bank wrote them before it made other kinds
            initiation = line["initiation"]
            request = {"Data": {"ConsentId": line["consent_id"], "Initiation": initiation}, "Risk": {}}
            amount = initiation["InstructedAmount"]
            executions = [Execution(1, created, amount, parse_money(amount["Amount"]),
                                    debit_id=line["debit_transaction_id"], credit_id=line["credit_transaction_id"])]
        return cls(KINDS[line["type"]], line["payment_id"], line["customer_id"], line["debtor_account_id"], request,
                   created, line.get("key"), executions)
