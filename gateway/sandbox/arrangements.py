"""What customers have set up at the bank besides their books, as full UK Open Banking v3.1 records.

Saved payees (OBBeneficiary5), direct debit mandates (OBDirectDebit2), standing orders (OBStandingOrder6),
future-dated payments (OBScheduledPayment3), products (OBReadProduct2), offers (OBOffer1) and parties (OBParty2).
Direct debits and standing orders are read off the account's own DD and SO entries, so their payees, amounts and
dates agree with its transactions by construction. All are built once, with the bank, and never change.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from gateway.sandbox.ledger import Account, Entry, money
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


def _bank_id(agent: dict) -> dict:
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
        records.append({
            "AccountId": account.account_id,
            "StandingOrderId": _id("so", account, number),
            "Frequency": _monthly(last.booked.day),
            "Reference": _reference(last),
            "FirstPaymentDateTime": first.booked.isoformat(),
            "NextPaymentDateTime": upcoming.isoformat(),
            "LastPaymentDateTime": last.booked.isoformat(),
            "FinalPaymentDateTime": _add_months(upcoming, STANDING_ORDER_TERM - 1).isoformat(),
            "StandingOrderStatusCode": "Active",
            "FirstPaymentAmount": _amount(first.amount, account.currency),
            "NextPaymentAmount": _amount(last.amount, account.currency),
            "LastPaymentAmount": _amount(last.amount, account.currency),
            "FinalPaymentAmount": _amount(last.amount, account.currency),
            "CreditorAgent": _bank_id(last.details["CreditorAgent"]),
            "CreditorAccount": last.details["CreditorAccount"],
        })
    return records


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
    account: Account, number: int, when: datetime, pence: int, reference: str, creditor: dict, agent: dict
) -> dict:
    return {
        "AccountId": account.account_id,
        "ScheduledPaymentId": _id("sp", account, number),
        "ScheduledPaymentDateTime": when.isoformat(),
        "ScheduledType": "Execution",
        "Reference": reference[:35],
        "DebtorReference": creditor["Name"][:35],
        "InstructedAmount": _amount(pence, account.currency),
        "CreditorAgent": _bank_id(agent),
        "CreditorAccount": creditor,
    }


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
