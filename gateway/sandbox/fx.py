"""Foreign exchange for international payments: the bank's rates, what a payment costs in pounds, and its fee.

Rates are a small fixed table of mid-market rates (units of the currency per pound). The bank sells currency at the
mid rate less its spread, and that is both its `Actual` rate (at execution) and its `Indicative` one (quoted, valid
for INDICATIVE_FOR); an `Agreed` rate is the one the request names with its ContractIdentification, honoured as is.
Each payment, and each standing-order instalment, also costs the bank's flat fee for the currency, debited from the
debtor unless the creditor bears the charges (then it comes off what is sent, which this bank does not see).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from gateway.sandbox.ledger import Rejected, money, parse_money

HOME = "GBP"  # the currency every account here is held in, and the UnitCurrency of every rate
# Currency of transfer -> (mid-market units per pound, the bank's fee per payment in pence)
RATES = {"EUR": (Decimal("1.16"), 250), "USD": (Decimal("1.27"), 900)}
SPREAD = Decimal("0.01")  # the bank gives 1% fewer units per pound than the mid-market rate
INDICATIVE_FOR = timedelta(minutes=30)
CHARGE_TYPE = "SBOX.InternationalPaymentFee"  # OBExternalPaymentChargeType1Code: namespaced, none listed fits
_RATE_PLACES = Decimal("0.0001")
_PENNY = Decimal("0.01")
_INITIATION = "Data.Initiation"


def bank_rate(currency: str) -> Decimal:
    """Units of `currency` the bank sells for a pound."""
    return (RATES[currency][0] * (1 - SPREAD)).quantize(_RATE_PLACES, ROUND_HALF_UP)


def check(initiation: dict) -> None:
    """Rejected unless this bank can make the international payment `initiation` describes."""
    currency = initiation["CurrencyOfTransfer"]
    if currency not in RATES:
        raise Rejected("UK.OBIE.Unsupported.Currency", f"currencies of transfer: {', '.join(RATES)}",
                       f"{_INITIATION}.CurrencyOfTransfer")
    if initiation["InstructedAmount"]["Currency"] not in (HOME, currency):
        raise Rejected("UK.OBIE.Unsupported.Currency", f"the amount is in {HOME} or the currency of transfer",
                       f"{_INITIATION}.InstructedAmount.Currency")
    terms = initiation.get("ExchangeRateInformation")
    if terms is None:
        return
    path = f"{_INITIATION}.ExchangeRateInformation"
    if terms.get("UnitCurrency") != HOME:
        raise Rejected("UK.OBIE.Field.Invalid", f"rates here are per {HOME}", f"{path}.UnitCurrency")
    if terms.get("RateType") == "Agreed":
        for name in ("ContractIdentification", "ExchangeRate"):
            if terms.get(name) is None:
                raise Rejected("UK.OBIE.Field.Missing", f"an Agreed rate needs its {name}", f"{path}.{name}")
        rate = terms["ExchangeRate"]
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            raise Rejected("UK.OBIE.Field.Invalid", "ExchangeRate must be a positive number", f"{path}.ExchangeRate")
    elif terms.get("RateType") in ("Actual", "Indicative"):
        for name in ("ContractIdentification", "ExchangeRate"):
            if name in terms:
                raise Rejected("UK.OBIE.Field.Unexpected", f"{name} goes with an Agreed rate only", f"{path}.{name}")
    else:
        raise Rejected("UK.OBIE.Field.Invalid", "RateType is Actual, Agreed or Indicative", f"{path}.RateType")


def quote(initiation: dict, at: datetime) -> dict:
    """The ExchangeRateInformation a payment (or instalment) of `initiation` made at `at` converts at."""
    currency = initiation["CurrencyOfTransfer"]
    terms = initiation.get("ExchangeRateInformation") or {"RateType": "Actual"}
    if terms["RateType"] == "Agreed":
        return {"UnitCurrency": HOME, "ExchangeRate": terms["ExchangeRate"], "RateType": "Agreed",
                "ContractIdentification": terms["ContractIdentification"]}
    answer = {"UnitCurrency": HOME, "ExchangeRate": float(bank_rate(currency)), "RateType": terms["RateType"]}
    if terms["RateType"] == "Indicative":
        answer["ExpirationDateTime"] = (at + INDICATIVE_FOR).isoformat()
    return answer


def cost(amount: dict, rate: dict) -> int:
    """Pence the debtor pays for sending `amount` (in pounds, or in the currency of transfer at `rate`)."""
    if amount["Currency"] == HOME:
        return parse_money(amount["Amount"])
    pounds = (Decimal(amount["Amount"]) / Decimal(str(rate["ExchangeRate"]))).quantize(_PENNY, ROUND_HALF_UP)
    return int(pounds * 100)


def bearer(initiation: dict) -> str:
    return str(initiation.get("ChargeBearer") or "BorneByDebtor")


def fee(initiation: dict) -> int:
    """Pence of the bank's fee for one payment of `initiation`."""
    return RATES[initiation["CurrencyOfTransfer"]][1]


def debtor_fee(initiation: dict) -> int:
    """Pence of the fee the debtor's account pays: all of it, unless the creditor bears the charges."""
    return 0 if bearer(initiation) == "BorneByCreditor" else fee(initiation)


def charges(initiation: dict) -> list[dict]:
    """OB Charges of one payment of `initiation`."""
    amount = {"Amount": money(fee(initiation)), "Currency": HOME}
    return [{"ChargeBearer": bearer(initiation), "Type": CHARGE_TYPE, "Amount": amount}]


def exchange(rate: dict, currency: str, amount: dict, at: datetime) -> dict:
    """OBCurrencyExchange5 of a booked debit: pounds into `currency` at `rate`, for sending `amount`."""
    record = {"SourceCurrency": HOME, "TargetCurrency": currency, "UnitCurrency": HOME,
              "ExchangeRate": rate["ExchangeRate"], "QuotationDate": at.isoformat(), "InstructedAmount": amount}
    if "ContractIdentification" in rate:
        record["ContractIdentification"] = rate["ContractIdentification"][:35]
    return record
