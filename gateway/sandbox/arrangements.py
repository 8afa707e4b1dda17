"""What customers have set up at the bank besides their books, as full UK Open Banking v3.1 records.

Saved payees (OBBeneficiary5), direct debit mandates (OBDirectDebit2), standing orders (OBStandingOrder6),
future-dated payments (OBScheduledPayment3), products (OBReadProduct2), offers (OBOffer1) and parties (OBParty2).
Direct debits and standing orders are read off the account's own DD and SO entries, so their payees, amounts and
dates agree with its transactions by construction. All these are built once, with the bank, and never change; the
scheduled payments and standing orders made since through the payments service are rendered from their orders as
they stand when read (`pending_payment`, `standing_order_of`).
"""

from __future__ import annotations

import collections
import random
from datetime import datetime, timedelta

from gateway.sandbox.ledger import Account, Entry, money
from gateway.sandbox.orders import Order, moment
from gateway.sandbox.profiles import Household, Offer, Person
from gateway.sandbox.statements import month_start

BANK_SITE = "https://sandbox-bank.example"
STANDING_ORDER_TERM = 12  # payments still to come: a tenancy's year
# Account kind -> (ProductType, ProductId, OtherProductType name or None)
_PRODUCTS = {
    "current": ("PersonalCurrentAccount", "SBX-PCA-EVERYDAY", None),
    "savings": ("Other", "SBX-SAV-INSTANT", "Savings"),
    "card": ("Other", "SBX-CC-PLATINUM", "Credit Card"),
}


def _id(prefix: str, account: Account, number: int) -> str:
    return f"{prefix}-{account.account_id.removeprefix('acc-')}-{number}"


def _amount(pence: int, currency: str) -> dict:
    return {"Amount": money(pence), "Currency": currency}


def _monthly(day: int) -> str:
    """OB Frequency: every month on `day`."""
    return f"IntrvlMnthDay:01:{day:02d}"


def _add_months(moment: datetime, count: int) -> datetime:
    month = moment.month - 1 + count
    return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)


def _next_on(anchor: datetime, day: int) -> datetime:
    """The first `day` of a month on or after the anchor (history runs up to the anchor, so that one is unpaid)."""
    this_month = month_start(anchor).replace(day=day)
    return this_month if this_month >= anchor else _add_months(this_month, 1)


def bank_id(agent: dict) -> dict:
    """OBBranchAndFinancialInstitutionIdentification5: scheme and identification only."""
    return {"SchemeName": agent["SchemeName"], "Identification": agent["Identification"]}


def _by_payee(entries: list[Entry], code: str) -> list[list[Entry]]:
    """The entries with proprietary code `code` (SO, DD), oldest first, grouped by the account they pay."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        if entry.proprietary_code == code:
            creditor = entry.details["CreditorAccount"]
            groups.setdefault((creditor["SchemeName"], creditor["Identification"]), []).append(entry)
    return list(groups.values())


def _reference(entry: Entry) -> str:
    """The payer's reference: the books write a payment's information as "<payee name> <reference>"."""
    return entry.information.removeprefix(entry.details["CreditorAccount"]["Name"] + " ")[:35]


def direct_debits(account: Account, entries: list[Entry], rng: random.Random) -> list[dict]:
    """A mandate per payee the account pays by direct debit, showing the last such payment."""
    records = []
    for number, paid in enumerate(_by_payee(entries, "DD"), 1):
        last = paid[-1]
        records.append({
            "AccountId": account.account_id,
            "DirectDebitId": _id("dd", account, number),
            "MandateIdentification": f"SBX-DDI-{rng.randrange(10**8):08d}",
            "DirectDebitStatusCode": "Active",
            "Name": last.details["CreditorAccount"]["Name"][:70],
            "PreviousPaymentDateTime": last.booked.isoformat(),
            "Frequency": _monthly(last.booked.day),
            "PreviousPaymentAmount": _amount(last.amount, account.currency),
        })
    return records


def standing_orders(account: Account, entries: list[Entry], anchor: datetime) -> list[dict]:
    """A monthly standing order per payee the account pays by one, running for STANDING_ORDER_TERM more payments."""
    records = []
    for number, paid in enumerate(_by_payee(entries, "SO"), 1):
        first, last = paid[0], paid[-1]
        upcoming = _next_on(anchor, last.booked.day)
        amount = _amount(last.amount, account.currency)
        payments = {
            "First": (first.booked, _amount(first.amount, account.currency)),
            "Next": (upcoming, amount),
            "Last": (last.booked, amount),
            "Final": (_add_months(upcoming, STANDING_ORDER_TERM - 1), amount),
        }
        records.append(standing_order(account.account_id, _id("so", account, number), _monthly(last.booked.day),
                                      last.details["CreditorAccount"], payments, reference=_reference(last),
                                      agent=last.details["CreditorAgent"]))
    return records


def standing_order(
    account_id: str, order_id: str, frequency: str, creditor: dict, payments: dict[str, tuple[datetime, dict]], *,
    reference: str | None = None, agent: dict | None = None, active: bool = True, count: str | None = None,
) -> dict:
    """OBStandingOrder6; `payments` holds the (date, amount) of its First, Next, Last and Final payments where known."""
    record: dict = {"AccountId": account_id, "StandingOrderId": order_id, "Frequency": frequency}
    if reference:
        record["Reference"] = reference[:35]
    record |= {f"{which}PaymentDateTime": moment.isoformat() for which, (moment, _) in payments.items()}
    if count:
        record["NumberOfPayments"] = count
    record["StandingOrderStatusCode"] = "Active" if active else "Inactive"
    record |= {f"{which}PaymentAmount": amount for which, (_, amount) in payments.items()}
    if agent:
        record["CreditorAgent"] = bank_id(agent)
    return record | {"CreditorAccount": creditor}


def beneficiary(account: Account, number: int, reference: str, creditor: dict, agent: dict, trusted: bool) -> dict:
    return {
        "AccountId": account.account_id,
        "BeneficiaryId": _id("ben", account, number),
        "BeneficiaryType": "Trusted" if trusted else "Ordinary",
        "Reference": reference[:35],
        "CreditorAgent": agent,
        "CreditorAccount": creditor,
    }


def scheduled_payment(
    account_id: str, payment_id: str, when: datetime, amount: dict, creditor: dict, *,
    reference: str | None = None, debtor_reference: str | None = None, agent: dict | None = None,
) -> dict:
    """OBScheduledPayment3 of a payment the account will make at `when`."""
    record: dict = {
        "AccountId": account_id,
        "ScheduledPaymentId": payment_id,
        "ScheduledPaymentDateTime": when.isoformat(),
        "ScheduledType": "Execution",
    }
    if reference:
        record["Reference"] = reference[:35]
    if debtor_reference:
        record["DebtorReference"] = debtor_reference[:35]
    record["InstructedAmount"] = amount
    if agent:
        record["CreditorAgent"] = bank_id(agent)
    return record | {"CreditorAccount": creditor}


def pending_payment(order: Order, agent: dict | None) -> dict:
    """The scheduled payment an order made through the payments service, until it is executed."""
    when, amount = next(order.instalments())
    remittance = order.initiation.get("RemittanceInformation") or {}
    return scheduled_payment(order.debtor_account_id, order.order_id, when, amount, order.initiation["CreditorAccount"],
                             reference=remittance.get("Reference"), agent=agent)


def standing_order_of(order: Order, agent: dict | None) -> dict:
    """The standing order an order made through the payments service: its first, next (while there is one), last
    paid and final payments (if it has an end), Active until it has made them all."""
    initiation = order.initiation
    first = next(order.instalments())
    payments = {"First": first}
    upcoming = order.instalment(len(order.executions) + 1)
    if upcoming is not None:
        payments["Next"] = upcoming
    booked = [done for done in order.executions if done.booked]
    if booked:
        payments["Last"] = (booked[-1].at, booked[-1].amount)
    if "NumberOfPayments" in initiation:
        payments["Final"] = collections.deque(order.instalments(), maxlen=1)[0]
    elif "FinalPaymentDateTime" in initiation:
        amount = initiation.get("FinalPaymentAmount") or initiation.get("RecurringPaymentAmount") or first[1]
        payments["Final"] = (moment(initiation["FinalPaymentDateTime"]), amount)
    return standing_order(order.debtor_account_id, order.order_id, initiation["Frequency"],
                          initiation["CreditorAccount"], payments, reference=initiation.get("Reference"), agent=agent,
                          active=upcoming is not None, count=initiation.get("NumberOfPayments"))


def seeded_payment(
    account: Account, number: int, when: datetime, pence: int, reference: str, creditor: dict, agent: dict
) -> dict:
    """A future payment the customer set up at the bank itself (the seeded ones)."""
    return scheduled_payment(account.account_id, _id("sp", account, number), when, _amount(pence, account.currency),
                             creditor, reference=reference, debtor_reference=creditor["Name"], agent=agent)


def _aer(rate_bp: int) -> str:
    """Annual equivalent rate of a gross rate paid monthly, in percent."""
    return f"{((1 + rate_bp / 120000) ** 12 - 1) * 100:.2f}"


def product(account: Account, kind: str, rate_bp: int) -> dict:
    """The account's product; a savings account's says what interest it pays."""
    product_type, product_id, other = _PRODUCTS[kind]
    record: dict = {
        "ProductName": account.description,
        "ProductId": product_id,
        "AccountId": account.account_id,
        "ProductType": product_type,
    }
    if other is not None:
        record["OtherProductType"] = {"Name": other, "Description": f"{account.description} from Sandbox Bank"}
    if kind == "savings":
        record["OtherProductType"]["CreditInterest"] = {"TierBandSet": [{
            "TierBandMethod": "INWH",
            "Destination": "INPA",
            "TierBand": [{
                "TierValueMinimum": "1.00",
                "CalculationFrequency": "FQDY",
                "ApplicationFrequency": "FQMY",
                "FixedVariableInterestRateType": "INVA",
                "AER": _aer(rate_bp),
                "BankInterestRateType": "INGR",
                "BankInterestRate": f"{rate_bp / 100:.2f}",
            }],
        }]}
    return record


def offer(account: Account, number: int, terms: Offer, anchor: datetime) -> dict:
    return {
        "AccountId": account.account_id,
        "OfferId": _id("off", account, number),
        "OfferType": terms.offer_type,
        "Description": terms.description,
        "StartDateTime": (anchor + timedelta(days=terms.days[0])).isoformat(),
        "EndDateTime": (anchor + timedelta(days=terms.days[1])).isoformat(),
        "Rate": terms.rate,
        "Term": terms.term,
        "URL": f"{BANK_SITE}/offers/{terms.slug}",
        "Amount": _amount(terms.amount, account.currency),
        "Fee": _amount(terms.fee, account.currency),
    }


def party(person: Person, number: str, home: Household) -> dict:
    """OBParty2 of an individual who holds accounts alone (PartyType is Joint on a joint account's answers)."""
    return {
        "PartyId": person.party_id,
        "PartyNumber": number,
        "PartyType": "Sole",
        "Name": person.name,
        "FullLegalName": person.full_legal_name,
        "LegalStructure": "UK.OBIE.Individual",
        "BeneficialOwnership": True,
        "EmailAddress": person.email,
        "Phone": home.phone,
        "Mobile": person.mobile,
        "Address": [{
            "AddressType": "Residential",
            "BuildingNumber": home.building,
            "StreetName": home.street,
            "TownName": home.town,
            "CountrySubDivision": home.county,
            "PostCode": home.post_code,
            "Country": "GB",
        }],
    }
