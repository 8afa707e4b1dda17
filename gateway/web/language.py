"""What each UK Open Banking permission means to a customer, in plain words: the one place wording is reviewed.

Each permission reads as "The app will see ..."; the consent page also lists, from the same table, what the app
will *not* see, so a customer can tell a narrow request from a broad one.
"""
from __future__ import annotations

from gateway.consents.model import Kind

PERMISSIONS: dict[str, str] = {
    "ReadAccountsBasic": "the names, types and currencies of the accounts you choose",
    "ReadAccountsDetail": "the sort codes and account numbers of the accounts you choose",
    "ReadBalances": "the balances of those accounts",
    "ReadBeneficiariesBasic": "the names of the people and companies you have saved as payees",
    "ReadBeneficiariesDetail": "the account details of your saved payees",
    "ReadDirectDebits": "your Direct Debits",
    "ReadStandingOrdersBasic": "your standing orders: to whom, how much and how often",
    "ReadStandingOrdersDetail": "the payee account details of your standing orders",
    "ReadScheduledPaymentsBasic": "your payments scheduled for later",
    "ReadScheduledPaymentsDetail": "the payee account details of your scheduled payments",
    "ReadTransactionsBasic": "your transactions: dates, amounts and their status",
    "ReadTransactionsDetail": "your transactions in full: descriptions, merchants and the other party's details",
    "ReadTransactionsCredits": "money paid into those accounts",
    "ReadTransactionsDebits": "money paid out of those accounts",
    "ReadStatementsBasic": "your statements: their dates and periods",
    "ReadStatementsDetail": "your statements in full, including their amounts and files",
    "ReadProducts": "the product details of those accounts (such as interest rates and fees)",
    "ReadOffers": "offers the bank has made to you",
    "ReadParty": "the name and contact details of the account holders",
    "ReadPartyPSU": "your own name and contact details",
    "ReadPAN": "your full card numbers (otherwise only the last digits are shown)",
}


# A confirmation-of-funds consent has no permissions: what it lets the app learn is this one answer.
FUNDS_CHECK = ("whether the account has enough money for an amount the app names: only a yes or no, never your "
               "balance or transactions")


def will_see(permissions, kind: Kind = Kind.ACCOUNT_ACCESS) -> list[str]:
    if kind is Kind.FUNDS_CONFIRMATION:
        return [FUNDS_CHECK]
    return [PERMISSIONS[p] for p in PERMISSIONS if p in set(permissions)]


def will_not_see(permissions) -> list[str]:
    return [PERMISSIONS[p] for p in PERMISSIONS if p not in set(permissions)]
