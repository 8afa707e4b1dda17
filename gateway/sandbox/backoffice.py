"""The bank's back office for payments: it places orders, executes them when due and keeps them across restarts.

An execution debits the debtor (and the fee of an international one) and, when the creditor banks here, credits them;
one refused for want of funds books nothing. What is due when an order is placed executes then, and if the funds are
not there the whole request is refused and nothing is kept; what falls due later is run by the ledger's clock
(`Ledger.at`) and booked at its due time.

Idempotency: a payment consent pays once, so the same request under it answers the order it made, and anything else
under it is refused; a VRP consent pays many times, so there the x-idempotency-key the gateway forwards (hashed per
TPP) does that. With a state file each order is appended as a JSON line when placed, each later execution as another,
and they are replayed on start.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from gateway.sandbox import arrangements, fx
from gateway.sandbox.ledger import BANK_BIC, BANK_NAME, Account, Entry, Ledger, Rejected, agent, names, parse_money
from gateway.sandbox.orders import IMMEDIATE, KINDS, SCHEDULED, STANDING, VRP, Execution, Kind, Order, moment
from gateway.sandbox.schedule import payment_dates
from gateway.sandbox.status_changes import StatusChanges

# Not among v3.1.11's OBError1 codes, which have none for funds: the bank's own namespace (x-namespaced-enum).
INSUFFICIENT_FUNDS = "SBOX.InsufficientFunds"
MAX_PAYMENTS = 1000  # a standing order's NumberOfPayments
HORIZON = timedelta(days=3660)  # how far ahead a payment may be set up, and a standing order may run past its first


class Orders:
    """Every order placed, by id, consent (or VRP idempotency key) and debtor account."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._orders: dict[str, Order] = {}
        self._by_consent: dict[tuple[str, str], Order] = {}
        self._by_key: dict[tuple[str, str, str], Order] = {}
        self._by_account: dict[str, list[Order]] = {}
        self._state_file: Path | None = None
        self.changes = StatusChanges()  # each order's status as it changes, for the gateway to read

    # -- reading -------------------------------------------------------------------------------

    def find(self, customer_id: str, kind: Kind, order_id: str) -> Order | None:
        """The customer's order of `kind` with this id, as of now."""
        self._ledger.catch_up()
        order = self._orders.get(order_id)
        return order if order is not None and order.kind is kind and order.customer_id == customer_id else None

    def records(self, name: str, account_id: str) -> list[dict]:
        """The account's orders as AISP records of OB type `name`: its pending scheduled payments (ScheduledPayment)
        and its standing orders (StandingOrder); none of any other type."""
        self._ledger.catch_up()
        timing = {"ScheduledPayment": SCHEDULED, "StandingOrder": STANDING}.get(name)
        orders = [order for order in self._by_account.get(account_id, []) if order.kind.timing == timing]
        if timing == SCHEDULED:
            return [arrangements.pending_payment(order, self._creditor_agent(order))
                    for order in orders if not order.executions]
        return [arrangements.standing_order_of(order, self._creditor_agent(order)) for order in orders]

    def _creditor_agent(self, order: Order) -> dict | None:
        """The creditor's bank as the request names it (an international one), or this bank if it holds the account."""
        named = order.instruction.get("CreditorAgent") or {}
        if named.get("SchemeName") and named.get("Identification"):
            return dict(named)
        if self._ledger.held_here(order.instruction["CreditorAccount"], self._ledger.account(order.debtor_account_id)):
            return agent(BANK_BIC, BANK_NAME)
        return None

    # -- placing -------------------------------------------------------------------------------

    def place(self, kind: Kind, debtor: Account, request: dict, key: str | None = None) -> Order:
        """Accept a payment request of `kind` from `debtor` (see `payments.read` for what it holds), executing what
        is due now, or raise Rejected. A repeated request answers the order it made (see the module's docstring)."""
        with self._ledger.lock:
            self._ledger.catch_up()
            previous = self._previous(kind, debtor, request, key)
            if previous is not None:
                return previous
            order = Order(kind, f"{kind.prefix}-{uuid.uuid4().hex}", debtor.customer_id, debtor.account_id, request,
                          self._ledger.now(), key if kind is VRP else None)
            self._check(order, debtor)
            due = itertools.takewhile(lambda instalment: instalment[0] <= order.created, order.instalments())
            order.executions = [self._execution(order, number, order.created, amount)
                                for number, (_, amount) in enumerate(due, 1)]
            if sum(done.pence + done.fee for done in order.executions) > self._ledger.available(debtor.account_id):
                raise Rejected(INSUFFICIENT_FUNDS, "insufficient funds", order.funds_path())
            self._record(order.to_json())
            self._add(order)
            self.changes.note(order)
            self._arm(order)
            return order

    def _previous(self, kind: Kind, debtor: Account, request: dict, key: str | None) -> Order | None:
        consent_id = str(request["Data"]["ConsentId"])
        if kind is VRP:
            previous = self._by_key.get((debtor.customer_id, consent_id, key)) if key else None
            refusal = Rejected("UK.OBIE.Header.Invalid", "x-idempotency-key was used for another payment",
                               "x-idempotency-key")
        else:
            previous = self._by_consent.get((debtor.customer_id, consent_id))
            refusal = Rejected("UK.OBIE.Resource.InvalidConsentStatus", "consent already used", "Data.ConsentId")
        if previous is None:
            return None
        same = previous.kind is kind and previous.debtor_account_id == debtor.account_id
        if same and previous.data == request["Data"]:
            return previous
        raise refusal

    def _check(self, order: Order, debtor: Account) -> None:
        """Rejected unless this bank can make the payment: the account, the currencies, the dates, the frequency."""
        stated = order.initiation.get("DebtorAccount")
        if stated is not None and not names(stated, debtor):
            raise Rejected("UK.OBIE.Field.Invalid", "debtor account does not match", "Data.Initiation.DebtorAccount")
        if order.kind.international:
            if debtor.currency != fx.HOME:
                raise Rejected("UK.OBIE.Unsupported.Currency", f"international payments are from {fx.HOME} accounts",
                               "Data.Initiation.CurrencyOfTransfer")
            fx.check(order.initiation)
        else:
            for path, amount in order.amounts():
                if amount["Currency"] != debtor.currency:
                    raise Rejected("UK.OBIE.Unsupported.Currency", f"account is held in {debtor.currency}",
                                   f"{path}.Currency")
        if order.kind.timing != IMMEDIATE:
            self._check_dates(order)

    def _check_dates(self, order: Order) -> None:
        initiation, path = order.initiation, "Data.Initiation"
        first_name = "FirstPaymentDateTime" if order.kind.timing == STANDING else "RequestedExecutionDateTime"
        if first_name not in initiation:  # a file to pay at once
            return
        first = moment(initiation[first_name])
        today = order.created.replace(hour=0, minute=0, second=0)
        if not today <= first <= order.created + HORIZON:
            raise Rejected("UK.OBIE.Field.InvalidDate", f"{first_name} must be from today to ten years ahead",
                           f"{path}.{first_name}")
        if order.kind.timing != STANDING:
            return
        final = initiation.get("FinalPaymentDateTime")
        if final is not None and not first <= moment(final) <= first + HORIZON:
            raise Rejected("UK.OBIE.Field.InvalidDate", "FinalPaymentDateTime must be from the first payment to ten "
                           "years after it", f"{path}.FinalPaymentDateTime")
        count = initiation.get("NumberOfPayments")
        if count is not None and not (count.isdigit() and 1 <= int(count) <= MAX_PAYMENTS):
            raise Rejected("UK.OBIE.Field.Invalid", f"NumberOfPayments must be from 1 to {MAX_PAYMENTS}",
                           f"{path}.NumberOfPayments")
        recurring = initiation.get("RecurringPaymentDateTime")
        if recurring is not None and not first < moment(recurring) <= first + HORIZON:
            raise Rejected("UK.OBIE.Field.InvalidDate", "RecurringPaymentDateTime must be after the first payment",
                           f"{path}.RecurringPaymentDateTime")
        try:
            payment_dates(initiation["Frequency"], first)
        except ValueError as exc:
            raise Rejected("UK.OBIE.Unsupported.Frequency", str(exc), f"{path}.Frequency") from None

    def _execution(self, order: Order, number: int, at: datetime, amount: dict) -> Execution:
        """The next payment of `order`, costed (at the bank's rate then, if it is international), not yet booked."""
        debtor = self._ledger.account(order.debtor_account_id)
        if order.kind.international:
            rate = fx.quote(order.initiation, at)
            pence, fee, creditor = fx.cost(amount, rate), fx.debtor_fee(order.initiation), None
        else:
            rate, pence, fee = None, parse_money(amount["Amount"]), 0
            creditor = self._ledger.held_here(order.instruction_for(number)["CreditorAccount"], debtor)
        return Execution(number, at, amount, pence, fee, rate, str(uuid.uuid4()),
                         str(uuid.uuid4()) if creditor else None, str(uuid.uuid4()) if fee else None)

    def _arm(self, order: Order) -> None:
        """Have the ledger execute the order's next payment when it falls due."""
        number = len(order.executions) + 1
        upcoming = order.instalment(number)
        if upcoming is None:
            return
        when, amount = upcoming

        def execute() -> None:
            if len(order.executions) != number - 1:  # done already
                return
            done = self._execution(order, number, when, amount)
            if done.pence + done.fee > self._ledger.available(order.debtor_account_id):
                done = replace(done, debit_id=None, credit_id=None, fee_id=None)
            self._record({"type": "execution", "payment_id": order.order_id} | done.to_json())
            order.executions.append(done)
            self._book(order, done)
            self.changes.note(order)
            self._arm(order)

        self._ledger.at(when, execute)

    def _add(self, order: Order) -> None:
        self._orders[order.order_id] = order
        if order.kind is VRP:
            if order.key:
                self._by_key[(order.customer_id, order.consent_id, order.key)] = order
        else:
            self._by_consent[(order.customer_id, order.consent_id)] = order
        self._by_account.setdefault(order.debtor_account_id, []).append(order)
        for done in order.executions:
            self._book(order, done)

    def _book(self, order: Order, done: Execution) -> None:
        """Post what an execution moved: the debit, the fee, and the credit to a creditor who banks here."""
        if done.debit_id is None:
            return
        debtor = self._ledger.account(order.debtor_account_id)
        what, reference = order.instruction_for(done.number), order.reference(done.number)
        creditor_ref = what["CreditorAccount"]
        end_to_end = str(what.get("EndToEndIdentification") or order.order_id)
        creditor = self._ledger.held_here(creditor_ref, debtor) if done.credit_id else None
        here = agent(BANK_BIC, BANK_NAME)
        details: dict[str, Any] = {"CreditorAccount": creditor_ref}
        if creditor is not None:
            details["CreditorAgent"] = here
        if done.rate is not None:
            details["CurrencyExchange"] = fx.exchange(done.rate, order.initiation["CurrencyOfTransfer"], done.amount,
                                                      done.at)
        entries = [Entry(done.debit_id, debtor.account_id, done.at, -done.pence,
                         f"{creditor_ref['Name']} {reference}"[:500], end_to_end, order.kind.code,
                         order.kind.proprietary, details)]
        if done.fee_id is not None:
            entries.append(Entry(done.fee_id, debtor.account_id, done.at, -done.fee,
                                 f"International payment fee {reference}"[:500], end_to_end,
                                 ("MiscellaneousDebitOperations", "Charges"), "CHG"))
        if creditor is not None and done.credit_id is not None:
            entries.append(Entry(done.credit_id, creditor.account_id, done.at, done.pence,
                                 f"{debtor.holder} {reference}"[:500], end_to_end,
                                 ("ReceivedCreditTransfers", "DomesticCreditTransfer"), "FPI",
                                 {"DebtorAgent": here, "DebtorAccount": debtor.reference()}))
        for entry in entries:
            self._ledger.post(entry)

    # -- the state file ------------------------------------------------------------------------

    def _record(self, line: dict) -> None:
        if self._state_file is not None:
            with self._state_file.open("ab") as f:
                f.write(orjson.dumps(line) + b"\n")

    def use_state_file(self, path: Path) -> None:
        """Replay the orders and executions recorded in `path` (if it exists), then append new ones to it."""
        with self._ledger.lock:
            if path.exists():
                for number, raw in enumerate(path.read_bytes().splitlines(), 1):
                    if raw.strip():
                        self._replay(orjson.loads(raw), f"{path}:{number}")
            self._state_file = path
            for order in self._orders.values():
                self.changes.seed(order)
                self._arm(order)

    def _replay(self, line: dict, where: str) -> None:
        if line.get("type") not in (*KINDS, "execution"):
            raise ValueError(f"{where}: unknown line type {line.get('type')!r}")
        if line["type"] == "execution":
            order = self._orders.get(line["payment_id"])
            if order is None:
                raise ValueError(f"{where}: execution of unknown payment {line['payment_id']!r}")
            done = Execution.from_json(line)
            order.executions.append(done)
            self._book(order, done)
            return
        order = Order.from_json(line)
        try:
            self._ledger.account(order.debtor_account_id)
        except KeyError:
            raise ValueError(f"{where}: unknown account {order.debtor_account_id!r}") from None
        self._add(order)
