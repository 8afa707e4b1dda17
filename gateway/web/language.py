"""What a consent means to a customer, in plain words from the catalogue: the one place the wording is put together.

Each UK Open Banking permission reads as "The app will see ..." (catalogue `perm.*`); the consent page also lists,
from the same table, what the app will *not* see, so a customer can tell a narrow request from a broad one. A
payment consent reads as one line per fact (payee, amount, when, how often, limits); an access recorded by the audit
log as what it did ("read your balance"), after the API family its path names.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from gateway.consents.model import Kind
from gateway.web.catalogue import has, text
from gateway.web.locales import day, moment, money

# The order the consent page lists them in (the UK OB data clusters, broad to narrow).
PERMISSIONS = (
    "ReadAccountsBasic", "ReadAccountsDetail", "ReadBalances", "ReadBeneficiariesBasic", "ReadBeneficiariesDetail",
    "ReadDirectDebits", "ReadStandingOrdersBasic", "ReadStandingOrdersDetail", "ReadScheduledPaymentsBasic",
    "ReadScheduledPaymentsDetail", "ReadTransactionsBasic", "ReadTransactionsDetail", "ReadTransactionsCredits",
    "ReadTransactionsDebits", "ReadStatementsBasic", "ReadStatementsDetail", "ReadProducts", "ReadOffers",
    "ReadParty", "ReadPartyPSU", "ReadPAN",
)
INTERNATIONAL = frozenset({Kind.INTERNATIONAL_PAYMENT, Kind.INTERNATIONAL_SCHEDULED_PAYMENT,
                           Kind.INTERNATIONAL_STANDING_ORDER})


def will_see(locale: str, permissions, kind: Kind = Kind.ACCOUNT_ACCESS) -> list[str]:
    if kind is Kind.FUNDS_CONFIRMATION:  # no permissions: what it lets the app learn is this one answer
        return [text(locale, "perm.funds_check")]
    return [text(locale, f"perm.{p}") for p in PERMISSIONS if p in set(permissions)]


def will_not_see(locale: str, permissions) -> list[str]:
    return [text(locale, f"perm.{p}") for p in PERMISSIONS if p not in set(permissions)]


def period_used(locale: str, period_type: str, start: datetime, end: datetime, used_minor: int, limit_minor: int,
                currency: str) -> str:
    """One VRP limit's current period: "Used this month, 1 December 2026 to 31 December 2026: £30.00 of £100.00"."""
    def amount(minor: int) -> str:
        return money(locale, {"Amount": f"{minor // 100}.{minor % 100:02d}", "Currency": currency})
    return text(locale, "pay.used", period=text(locale, f"period_this.{period_type}"), start=day(locale, start),
                end=day(locale, end - timedelta(days=1)), used=amount(used_minor), limit=amount(limit_minor))


def _paid(locale: str, keys: tuple[str, str], initiation: dict, **values) -> str:
    """The (paid now, paid on {date}) line, after the initiation's RequestedExecutionDateTime."""
    when = initiation.get("RequestedExecutionDateTime")
    if when:
        return text(locale, keys[1], date=day(locale, when), **values)
    return text(locale, keys[0], **values)


def _vrp(locale: str, control: dict) -> list[str]:
    lines = [text(locale, "pay.vrp_each", amount=money(locale, control.get("MaximumIndividualAmount", {})))]
    for limit in control.get("PeriodicLimits", ()):
        key = "pay.vrp_limit_calendar" if limit.get("PeriodAlignment") == "Calendar" else "pay.vrp_limit"
        period = f"period.{limit.get('PeriodType', '')}"
        lines.append(text(locale, key, amount=money(locale, limit), period=text(locale, period) if has(period) else ""))
    start, end = control.get("ValidFromDateTime"), control.get("ValidToDateTime")
    key = {(True, True): "pay.valid_from_until", (True, False): "pay.valid_from", (False, True): "pay.valid_until",
           (False, False): "pay.valid"}[bool(start), bool(end)]
    lines.append(text(locale, key, start=day(locale, start), end=day(locale, end)))
    return lines


def _standing_order(locale: str, initiation: dict) -> str:
    first = initiation.get("FirstPaymentAmount") or initiation.get("InstructedAmount", {})
    frequency = "freq." + initiation.get("Frequency", "").split(":")[0]
    values = {"amount": money(locale, first), "first": day(locale, initiation.get("FirstPaymentDateTime")),
              "how_often": text(locale, frequency if has(frequency) else "freq.other")}
    if initiation.get("NumberOfPayments"):
        return text(locale, "pay.standing_count", count=initiation["NumberOfPayments"], **values)
    if initiation.get("FinalPaymentDateTime"):
        return text(locale, "pay.standing_until", final=day(locale, initiation["FinalPaymentDateTime"]), **values)
    return text(locale, "pay.standing_open", **values)


def what_the_payment_does(locale: str, kind: Kind, terms: dict) -> list[str]:
    """The payment a consent allows, in plain words, one line per fact (payee, amount, when, how often, limits)."""
    initiation = terms.get("Initiation", {})
    payee = initiation.get("CreditorAccount", {}).get("Name") or initiation.get("Creditor", {}).get("Name", "")
    lines = [text(locale, "pay.to", payee=payee)] if payee else []
    if kind is Kind.DOMESTIC_VRP:
        lines += _vrp(locale, terms.get("ControlParameters", {}))
    elif kind is Kind.FILE_PAYMENT:
        total = money(locale, {"Amount": f"{initiation.get('ControlSum', 0):.2f}", "Currency": "GBP"})
        count = initiation.get("NumberOfTransactions", "?")
        if initiation.get("FileReference"):
            lines.append(_paid(locale, ("pay.file_named_now", "pay.file_named_on"), initiation, count=count,
                               total=total, file=initiation["FileReference"]))
        else:
            lines.append(_paid(locale, ("pay.file_now", "pay.file_on"), initiation, count=count, total=total))
    elif "Frequency" in initiation:  # a standing order, domestic or international
        lines.append(_standing_order(locale, initiation))
    else:
        lines.append(_paid(locale, ("pay.amount_now", "pay.amount_on"), initiation,
                           amount=money(locale, initiation.get("InstructedAmount", {}))))
    if "CurrencyOfTransfer" in initiation:
        rate = initiation.get("ExchangeRateInformation", {}).get("ExchangeRate")
        lines.append(text(locale, "pay.fx_agreed", currency=initiation["CurrencyOfTransfer"], rate=rate) if rate else
                     text(locale, "pay.fx_bank", currency=initiation["CurrencyOfTransfer"]))
    reference = initiation.get("RemittanceInformation", {}).get("Reference") or initiation.get("Reference")
    if reference:
        lines.append(text(locale, "pay.reference", reference=reference))
    if kind in INTERNATIONAL:
        lines.append(text(locale, "pay.charges_international"))
    return lines


# An access's route → what it did: a payment call, else the resource its path names (the last literal segment, ids
# and a statement's /file skipped).
_RESOURCES = frozenset({"accounts", "balances", "transactions", "beneficiaries", "direct-debits", "standing-orders",
                        "scheduled-payments", "statements", "products", "offers", "party", "funds-confirmations"})
_SEGMENT = re.compile(r"/([a-z-]+)(?:/\{[^}]+\})?(?:/file)?$")
_PAYMENT = re.compile(r"/pisp/[a-z-]*(?:payments|vrps)(?:/|$)")


def access_in_words(locale: str, access: dict, now: datetime) -> str:
    """One recent access as the dashboard says it: "read your balance, yesterday 14:02"."""
    route, method = str(access.get("route", "")), str(access.get("method", ""))
    found = _SEGMENT.search(route)
    resource = {"parties": "party"}.get(found[1], found[1]) if found else ""
    if _PAYMENT.search(route):
        what = "access.payment" if method == "POST" else "access.payment_status"
    else:
        what = f"access.{resource}" if resource in _RESOURCES else "access.other"
    refused = int(access.get("status") or 0) >= 400
    return text(locale, "access.refused" if refused else "access.line", what=text(locale, what),
                when=moment(locale, str(access["ts"]), now))
