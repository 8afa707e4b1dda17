"""What each UK Open Banking permission means to a customer, in plain words: the one place wording is reviewed.

Each permission reads as "The app will see ..."; the consent page also lists, from the same table, what the app
will *not* see, so a customer can tell a narrow request from a broad one.
"""
from __future__ import annotations

from datetime import datetime, timedelta

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


_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}
_PERIODS = {"Day": "a day", "Week": "a week", "Fortnight": "a fortnight", "Month": "a month",
            "Half-year": "a half-year", "Year": "a year"}
_FREQUENCY = {"EvryDay": "every day", "EvryWorkgDay": "every working day", "IntrvlWkDay": "every week",
              "WkInMnthDay": "every month", "IntrvlMnthDay": "every month", "QtrDay": "every quarter"}


def money(amount: dict) -> str:
    """`{"Amount": "25.00", "Currency": "GBP"}` → "£25.00"; another currency keeps its code: "100.00 CHF"."""
    symbol = _SYMBOLS.get(amount.get("Currency", ""))
    figure = amount.get("Amount", "")
    return f"{symbol}{figure}" if symbol else f"{figure} {amount.get('Currency', '')}"


def day(moment: str | None) -> str:
    """An ISO 8601 date-time as the customer reads a date: "1 January 2027"."""
    if not moment:
        return ""
    when = datetime.fromisoformat(moment)
    return f"{when.day} {when:%B %Y}"


def period_used(period_type: str, start: datetime, end: datetime, used_minor: int, limit_minor: int,
                currency: str) -> str:
    """One VRP limit's current period: "Used from 1 December 2026 to 31 December 2026: £30.00 of £100.00"."""
    last = end - timedelta(days=1)
    def amount(minor: int) -> str:
        return money({"Amount": f"{minor // 100}.{minor % 100:02d}", "Currency": currency})
    return (f"Used this {period_type.lower()}, {day(start.isoformat())} to {day(last.isoformat())}: "
            f"{amount(used_minor)} of {amount(limit_minor)}")


def what_the_payment_does(kind: Kind, terms: dict) -> list[str]:
    """The payment a consent allows, in plain words, one line per fact (payee, amount, when, how often, limits)."""
    initiation = terms.get("Initiation", {})
    payee = initiation.get("CreditorAccount", {}).get("Name") or initiation.get("Creditor", {}).get("Name", "")
    lines = [f"To: {payee}"] if payee else []
    reference = initiation.get("RemittanceInformation", {}).get("Reference") or initiation.get("Reference")
    if kind is Kind.DOMESTIC_VRP:
        control = terms.get("ControlParameters", {})
        lines.append(f"Payments of up to {money(control.get('MaximumIndividualAmount', {}))} each, whenever the "
                     "app asks, without asking you again")
        lines += [f"At most {money(limit)} {_PERIODS.get(limit.get('PeriodType', ''), '')}"
                  f"{' (calendar)' if limit.get('PeriodAlignment') == 'Calendar' else ''}"
                  for limit in control.get("PeriodicLimits", ())]
        window = [f"from {day(control['ValidFromDateTime'])}" if control.get("ValidFromDateTime") else "",
                  f"until {day(control['ValidToDateTime'])}" if control.get("ValidToDateTime") else
                  "until you withdraw it"]
        lines.append("Valid " + " ".join(part for part in window if part))
    elif kind is Kind.FILE_PAYMENT:
        count, total = initiation.get("NumberOfTransactions", "?"), f"{initiation.get('ControlSum', 0):.2f}"
        name = f" in the file {initiation['FileReference']}" if initiation.get("FileReference") else ""
        when = (f" on {day(initiation['RequestedExecutionDateTime'])}" if initiation.get("RequestedExecutionDateTime")
                else " now")
        lines.append(f"{count} payments{name}, {money({'Amount': total, 'Currency': 'GBP'})} in all,{when}")
    elif "Frequency" in initiation:  # a standing order, domestic or international
        first = initiation.get("FirstPaymentAmount") or initiation.get("InstructedAmount", {})
        how_often = _FREQUENCY.get(initiation.get("Frequency", "").split(":")[0], "regularly")
        count = initiation.get("NumberOfPayments")
        until = f", {count} payments" if count else (
            f", until {day(initiation['FinalPaymentDateTime'])}" if initiation.get("FinalPaymentDateTime") else
            ", until you cancel it")
        lines.append(f"{money(first)} {how_often} from {day(initiation.get('FirstPaymentDateTime'))}{until}")
    else:
        amount = money(initiation.get("InstructedAmount", {}))
        when = (f" on {day(initiation['RequestedExecutionDateTime'])}" if initiation.get("RequestedExecutionDateTime")
                else " now")
        lines.append(f"Amount: {amount}{when}")
    if "CurrencyOfTransfer" in initiation:
        rate = initiation.get("ExchangeRateInformation", {})
        agreed = f"the agreed rate {rate['ExchangeRate']}" if rate.get("ExchangeRate") else "the bank's rate on the day"
        lines.append(f"Sent in {initiation['CurrencyOfTransfer']} at {agreed}, from your pounds")
    if reference:
        lines.append(f"Reference: {reference}")
    return lines
