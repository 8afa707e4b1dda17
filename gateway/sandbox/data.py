"""Seeded customers, accounts, six whole months of history and the records around them, for the sandbox bank.

Everything derives from (seed, anchor) through one random generator walked in a fixed order, so the
same pair always yields the same account numbers, transaction ids, amounts and times, while history
always runs from the first day of the sixth whole calendar month before the anchor (today by default) up
to it: always "recent", and always six monthly statements' worth.

Demo customers (customer id / username / password; their authenticator secrets are in `profiles`):
    alice / alice / alice-pass: acc-alice-current, acc-alice-savings (joint, with Daniel Reid), acc-alice-card (credit)
    bob   / bob   / bob-pass:   acc-bob-current, acc-bob-savings (joint, with Hannah Jones)
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from gateway.sandbox import arrangements, statements
from gateway.sandbox.auth import Credentials, OneTimeCodes
from gateway.sandbox.backoffice import Orders
from gateway.sandbox.ledger import (
    BANK_BIC,
    BANK_NAME,
    Account,
    Card,
    Entry,
    Ledger,
    agent,
)
from gateway.sandbox.profiles import PROFILES, Customer, Profile

SORT_CODE = "771001"  # the sandbox bank's only branch

# (OB BankTransactionCode, proprietary code) per kind of entry.
_KINDS = {
    "debit-card": (("CustomerCardTransactions", "PointOfSaleDebitCard"), "DEB"),
    "credit-card": (("CustomerCardTransactions", "CreditCardPayment"), "POS"),
    "salary": (("ReceivedCreditTransfers", "PayrollSalaryPayment"), "BGC"),
    "standing-order": (("IssuedCreditTransfers", "StandingOrder"), "SO"),
    "direct-debit": (("IssuedDirectDebits", "DomesticDirectDebit"), "DD"),
    "faster-out": (("IssuedCreditTransfers", "DomesticCreditTransfer"), "FPO"),
    "faster-in": (("ReceivedCreditTransfers", "DomesticCreditTransfer"), "FPI"),
    "transfer-out": (("IssuedCreditTransfers", "InternalBookTransfer"), "TFR"),
    "transfer-in": (("ReceivedCreditTransfers", "InternalBookTransfer"), "TFR"),
    "interest": (("MiscellaneousCreditOperations", "Interest"), "INT"),
}

_OTHER_BANKS = (
    ("NWBKGB2L", "National Westminster Bank plc"),
    ("BARCGB22", "Barclays Bank UK plc"),
    ("LOYDGB2L", "Lloyds Bank plc"),
    ("HBUKGB4B", "HSBC UK Bank plc"),
)

# (merchant, ISO 18245 category code, lowest pence, highest pence, online)
_EVERYDAY_SHOPS = (
    ("Tesco Stores", "5411", 800, 9500, False),
    ("Sainsbury's", "5411", 600, 8200, False),
    ("Pret A Manger", "5814", 250, 1200, False),
    ("Costa Coffee", "5814", 230, 900, False),
    ("Transport for London", "4111", 175, 880, False),
    ("Boots", "5912", 300, 3500, False),
    ("Deliveroo", "5812", 1400, 4200, True),
    ("Shell", "5541", 3000, 7500, False),
    ("The Red Lion", "5813", 900, 4800, False),
)
_BIGGER_SHOPS = (
    ("Amazon UK", "5999", 700, 12000, True),
    ("John Lewis", "5311", 2000, 25000, False),
    ("Trainline", "4112", 1500, 11000, True),
    ("British Airways", "4511", 8000, 45000, True),
    ("Waterstones", "5942", 800, 4500, False),
    ("Dishoom", "5812", 3500, 9500, False),
    ("Uniqlo", "5651", 1500, 9000, False),
)
# (merchant, category code, pence, day of month)
_SUBSCRIPTIONS = (("Netflix", "4899", 1099, 9), ("Spotify", "5815", 1199, 17))
_FRIENDLY_REFERENCES = ("Dinner", "Tickets", "Birthday present", "Cinema", "Holiday deposit", "Taxi")
# The bank's records besides accounts and transactions, by the name of their OB Data array.
RECORD_TYPES = ("Beneficiary", "DirectDebit", "StandingOrder", "ScheduledPayment", "Product", "Offer")


@dataclass(frozen=True)
class Bank:
    seed: int
    anchor: datetime
    customers: dict[str, Customer]
    credentials: Credentials
    ledger: Ledger
    records: dict[str, dict[str, list[dict]]]  # RECORD_TYPES name -> account id -> full records
    parties: dict[str, dict]  # customer id -> their own OBParty2
    co_holders: dict[str, list[dict]]  # joint account id -> OBParty2 of its holders besides the customer
    orders: Orders  # payments made through the payments service
    codes: OneTimeCodes  # the customers' authenticators: the second factor, and the codes already used


def build_bank(
    seed: int = 1, anchor: datetime | None = None, state_file: str | Path | None = None,
    clock: Callable[[], datetime] | None = None, totp_window: int = 1,
) -> Bank:
    """The sandbox bank for `seed`, with history up to `anchor` (truncated to its UTC day; today by default).

    With `state_file`, payments recorded there are replayed and new ones appended. `clock` is the bank's time from
    then on (the system's by default): what payments are stamped with and when scheduled ones fall due. One-time
    codes follow the real time, as the customer's authenticator does; `totp_window` is how many 30 s steps either
    side of the current one a code may be for (auth.OneTimeCodes).
    """
    if anchor is None:
        anchor = datetime.now(UTC)
    elif anchor.tzinfo is None:
        anchor = anchor.replace(tzinfo=UTC)
    anchor = anchor.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    accounts = {profile.customer.customer_id: _open_accounts(rng, profile, anchor) for profile in PROFILES}
    books = _Books(rng, anchor, [a for owned in accounts.values() for a in owned.values()])
    day = history_start(anchor)
    while day < anchor:
        for profile in PROFILES:
            _live_one_day(books, profile, accounts, day)
        day += timedelta(days=1)
    ledger = Ledger(books.accounts.values(), books.entries, clock or (lambda: datetime.now(UTC)))
    records: dict[str, dict[str, list[dict]]] = {name: {} for name in RECORD_TYPES}
    parties, co_holders = {}, {}
    for profile in PROFILES:
        customer_id, home = profile.customer.customer_id, profile.household
        _arrange(books, ledger, profile, accounts, records)
        parties[customer_id] = arrangements.party(profile.person, _digits(rng, 10), home)
        joint = accounts[customer_id]["savings"].account_id
        co_holders[joint] = [arrangements.party(home.partner, _digits(rng, 10), home)]
    orders = Orders(ledger)
    if state_file is not None:
        orders.use_state_file(Path(state_file))
    customers = {p.customer.customer_id: p.customer for p in PROFILES}
    codes = OneTimeCodes({p.customer.customer_id: p.totp_secret for p in PROFILES}, totp_window)
    return Bank(seed, anchor, customers, _credentials(), ledger, records, parties, co_holders, orders, codes)


def history_start(anchor: datetime) -> datetime:
    """Where the seeded history begins: the first day of the oldest monthly statement."""
    return statements.months(anchor)[0]


@functools.cache
def _credentials() -> Credentials:
    """Logins do not depend on the seed, and scrypt is slow on purpose: derive them once per process."""
    return Credentials(
        (p.customer.username, p.password, p.customer.customer_id, p.customer.display_name) for p in PROFILES
    )


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _pan(rng: random.Random, prefix: str) -> str:
    """A 16-digit card number with a valid Luhn check digit."""
    partial = prefix + _digits(rng, 15 - len(prefix))
    total = 0
    for i, digit in enumerate(reversed(partial)):
        n = int(digit) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return partial + str(-total % 10)


def _open_accounts(rng: random.Random, profile: Profile, anchor: datetime) -> dict[str, Account]:
    c = profile.customer

    def opened(min_years: int, max_years: int) -> datetime:
        return anchor - timedelta(days=rng.randint(min_years * 365, max_years * 365), hours=rng.randint(9, 16))

    def opening(kind: str) -> int:
        return rng.randint(*profile.opening[kind])

    accounts = {
        "current": Account(
            account_id=f"acc-{c.customer_id}-current",
            customer_id=c.customer_id,
            sub_type="CurrentAccount",
            description="Everyday Current Account",
            nickname=profile.nicknames["current"],
            opened=opened(3, 12),
            scheme="UK.OBIE.SortCodeAccountNumber",
            identification=SORT_CODE + _digits(rng, 8),
            holder=c.display_name,
            opening_balance=opening("current"),
            credit_limit=profile.overdraft,
            card=Card("VISA", _pan(rng, "465858"), c.display_name.upper()),
        ),
        "savings": Account(
            account_id=f"acc-{c.customer_id}-savings",
            customer_id=c.customer_id,
            sub_type="Savings",
            description="Instant Access Saver",
            nickname=profile.nicknames["savings"],
            opened=opened(1, 3),
            scheme="UK.OBIE.SortCodeAccountNumber",
            identification=SORT_CODE + _digits(rng, 8),
            holder=f"{c.display_name} & {profile.household.partner.name}",  # a joint account
            opening_balance=opening("savings"),
            secondary_identification=f"ROLL-{_digits(rng, 8)}",
        ),
    }
    if profile.card_limit:
        pan = _pan(rng, "535522")
        accounts["card"] = Account(
            account_id=f"acc-{c.customer_id}-card",
            customer_id=c.customer_id,
            sub_type="CreditCard",
            description="Platinum Rewards Credit Card",
            nickname=profile.nicknames["card"],
            opened=opened(1, 6),
            scheme="UK.OBIE.PAN",
            identification=pan,
            holder=c.display_name,
            opening_balance=opening("card"),
            credit_limit=profile.card_limit,
            card=Card("MasterCard", pan, c.display_name.upper()),
        )
    return accounts


class _Books:
    """Collects seeded entries, tracking balances so the simulated customer lives within their means."""

    def __init__(self, rng: random.Random, anchor: datetime, accounts: list[Account]) -> None:
        self.rng, self.anchor = rng, anchor
        self.statements_until = anchor.replace(day=1)  # earlier entries are on a monthly statement
        self.accounts = {a.account_id: a for a in accounts}
        self.balance = {a.account_id: a.opening_balance for a in accounts}
        self.entries: list[Entry] = []
        self.parties: dict[str, tuple[dict, dict]] = {}

    def available(self, account: Account) -> int:
        return self.balance[account.account_id] + account.credit_limit

    def at(self, day: datetime, first_hour: int, last_hour: int) -> datetime:
        hour, minute, second = self.rng.randint(first_hour, last_hour), self.rng.randrange(60), self.rng.randrange(60)
        return day + timedelta(hours=hour, minutes=minute, seconds=second)

    def party(self, name: str, card_holder: str | None = None) -> tuple[dict, dict]:
        """Account and agent of a counterparty at another bank: made up from the generator when first met, then kept.

        With `card_holder`, `name` is a card issuer and the account that person's card there, paid by its number.
        """
        if name not in self.parties:
            bic, bank = self.rng.choice(_OTHER_BANKS)
            if card_holder is None:
                account = {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": _digits(self.rng, 14),
                           "Name": name}
            else:
                account = {"SchemeName": "UK.OBIE.PAN", "Identification": _pan(self.rng, "552188"),
                           "Name": card_holder}
            self.parties[name] = account, agent(bic, bank)
        account, agent_ref = self.parties[name]
        return dict(account), dict(agent_ref)

    def post(self, account: Account, when: datetime, pence: int, information: str, kind: str, details: dict) -> None:
        """Book an entry; a payment out's `information` reads "<payee name> <reference>"."""
        bank_code, proprietary = _KINDS[kind]
        self.balance[account.account_id] += pence
        statement = statements.reference(account, when) if when < self.statements_until else None
        self.entries.append(
            Entry(
                transaction_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                account_id=account.account_id,
                booked=when,
                amount=pence,
                information=information,
                reference=f"{proprietary}{self.rng.getrandbits(48):012X}",
                bank_code=bank_code,
                proprietary_code=proprietary,
                details=details,
                statement=statement,
            )
        )

    def transfer(
        self, source: Account, target: Account, when: datetime, pence: int, reference: str, kinds: tuple[str, str]
    ) -> None:
        """Both sides of a payment between two accounts held here."""
        here = agent(BANK_BIC, BANK_NAME)
        self.post(source, when, -pence, f"{target.holder} {reference}", kinds[0],
                  {"CreditorAgent": here, "CreditorAccount": target.reference()})
        self.post(target, when, pence, f"{source.holder} {reference}", kinds[1],
                  {"DebtorAgent": here, "DebtorAccount": source.reference()})

    def card_purchase(self, account: Account, when: datetime, shop: tuple, pence: int) -> None:
        name, category, _, _, online = shop
        kind = "credit-card" if account.sub_type == "CreditCard" else "debit-card"
        authorisation = "None" if online else self.rng.choice(("Contactless", "Contactless", "PIN", "ConsumerDevice"))
        assert account.card is not None
        self.post(account, when, -pence, f"{name}, {'online' if online else 'London GB'}", kind, {
            "MerchantDetails": {"MerchantName": name, "MerchantCategoryCode": category},
            "CardInstrument": account.card.instrument(authorisation),
        })


def _working_day(year: int, month: int, day: int) -> date:
    """The given day, or the Friday before it if it falls at a weekend (when salaries are paid)."""
    when = date(year, month, day)
    return when - timedelta(days=max(0, when.weekday() - 4))


def _live_one_day(books: _Books, profile: Profile, accounts: dict[str, dict[str, Account]], day: datetime) -> None:
    rng = books.rng
    own = accounts[profile.customer.customer_id]
    current, savings, card = own["current"], own["savings"], own.get("card")
    dom = day.day
    # Early-morning batch: standing orders, direct debits, interest.
    if dom == 1:
        account, agent_ref = books.party(profile.landlord)
        books.post(current, books.at(day, 1, 4), -profile.rent, f"{profile.landlord} RENT", "standing-order",
                   {"CreditorAgent": agent_ref, "CreditorAccount": account})
        interest = books.balance[savings.account_id] * profile.savings_rate_bp // 120000
        books.post(savings, books.at(day, 1, 4), interest, "Gross interest", "interest", {})
    for payee, reference, lowest, highest, bill_day in profile.bills:
        if dom == bill_day:
            account, agent_ref = books.party(payee)
            books.post(current, books.at(day, 1, 4), -rng.randint(lowest, highest), f"{payee} {reference}",
                       "direct-debit", {"CreditorAgent": agent_ref, "CreditorAccount": account})
    if profile.store_card is not None and dom == profile.store_card[3]:
        issuer, reference, pence, _ = profile.store_card
        account, agent_ref = books.party(issuer, card_holder=profile.customer.display_name)
        books.post(current, books.at(day, 1, 4), -pence, f"{account['Name']} {reference}", "standing-order",
                   {"CreditorAgent": agent_ref, "CreditorAccount": account})
    if card is not None and dom == 14 and books.balance[card.account_id] < 0:
        owed = -books.balance[card.account_id]
        repay = owed if books.balance[current.account_id] - owed > 20000 else min(owed, 2500)
        books.transfer(current, card, books.at(day, 1, 4), repay, "CARD REPAYMENT", ("direct-debit", "transfer-in"))
    # Salary and the sweep to savings that follows it.
    payday = _working_day(day.year, day.month, profile.payday)
    if day.date() == payday:
        account, agent_ref = books.party(profile.employer)
        pay = profile.salary + rng.randint(-1500, 1500)
        books.post(current, books.at(day, 5, 6), pay, f"{profile.employer.upper()} SALARY", "salary",
                   {"DebtorAgent": agent_ref, "DebtorAccount": account})
    if day.date() == payday + timedelta(days=1) and books.available(current) > profile.sweep + profile.overdraft:
        books.transfer(current, savings, books.at(day, 7, 8), profile.sweep, "MONTHLY SAVINGS",
                       ("transfer-out", "transfer-in"))
    if day.date() == payday + timedelta(days=1):
        partner = profile.household.partner.name
        account, agent_ref = books.party(partner)
        books.post(savings, books.at(day, 9, 12), profile.household.contribution, f"{partner} MONTHLY SAVINGS",
                   "faster-in", {"DebtorAgent": agent_ref, "DebtorAccount": account})
    if profile.chips_in is not None and dom == profile.chips_in[2]:
        friend, pence, _, reference = profile.chips_in
        books.transfer(current, accounts[friend]["current"], books.at(day, 9, 20), pence, reference,
                       ("standing-order", "faster-in"))
    # Daytime spending.
    for name, category, pence, sub_day in _SUBSCRIPTIONS:
        if dom == sub_day:
            books.card_purchase(card or current, books.at(day, 8, 9), (name, category, pence, pence, True), pence)
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        shop = rng.choice(_EVERYDAY_SHOPS)
        pence = rng.randint(shop[2], shop[3])
        if books.available(current) - pence > 10000:
            books.card_purchase(current, books.at(day, 10, 21), shop, pence)
    if card is not None and rng.random() < 0.15:
        shop = rng.choice(_BIGGER_SHOPS)
        pence = rng.randint(shop[2], shop[3])
        if books.available(card) > pence:
            books.card_purchase(card, books.at(day, 10, 21), shop, pence)
    roll = rng.random()
    if roll < 0.08:
        account, agent_ref = books.party(rng.choice(profile.friends))
        pence = rng.randint(1000, 6000)
        if books.available(current) - pence > 10000:
            books.post(current, books.at(day, 10, 22), -pence, f"{account['Name']} {rng.choice(_FRIENDLY_REFERENCES)}",
                       "faster-out", {"CreditorAgent": agent_ref, "CreditorAccount": account})
    elif roll < 0.13:
        account, agent_ref = books.party(rng.choice(profile.friends))
        books.post(current, books.at(day, 10, 22), rng.randint(1000, 4000),
                   f"{account['Name']} {rng.choice(_FRIENDLY_REFERENCES)}", "faster-in",
                   {"DebtorAgent": agent_ref, "DebtorAccount": account})


def _arrange(
    books: _Books, ledger: Ledger, profile: Profile, accounts: dict[str, dict[str, Account]],
    records: dict[str, dict[str, list[dict]]],
) -> None:
    """The customer's records besides their books, added to `records` by type and account id."""
    own, here = accounts[profile.customer.customer_id], agent(BANK_BIC, BANK_NAME)
    for kind, account in own.items():
        entries = ledger.entries(account.account_id)
        records["DirectDebit"][account.account_id] = arrangements.direct_debits(account, entries, books.rng)
        records["StandingOrder"][account.account_id] = arrangements.standing_orders(account, entries, books.anchor)
        records["Product"][account.account_id] = [arrangements.product(account, kind, profile.savings_rate_bp)]
    current = own["current"]
    payees = [("RENT", *books.party(profile.landlord), True)]
    if profile.chips_in is not None:
        payees.append((profile.chips_in[3], accounts[profile.chips_in[0]]["current"].reference(), here, True))
    if "card" in own:
        payees.append(("CARD PAYMENT", own["card"].reference(), here, True))
    if profile.store_card is not None:
        payees.append((profile.store_card[1], *books.party(profile.store_card[0]), True))
    payees += [(profile.customer.display_name.upper(), *books.party(friend), False) for friend in profile.friends]
    records["Beneficiary"][current.account_id] = [
        arrangements.beneficiary(current, number, *payee) for number, payee in enumerate(payees, 1)
    ]
    records["ScheduledPayment"][current.account_id] = [
        arrangements.seeded_payment(current, number, books.anchor + timedelta(days=days), pence, reference,
                                    *books.party(payee))
        for number, (payee, reference, pence, days) in enumerate(profile.scheduled, 1)
    ]
    for number, terms in enumerate(profile.offers, 1):
        account = own[terms.account]
        records["Offer"].setdefault(account.account_id, []).append(
            arrangements.offer(account, number, terms, books.anchor))
