"""The control parameters of a UK Open Banking v3.1.11 VRP consent, and what one payment must fit in (pure: no I/O).

    params = parse_control_parameters(consent["ControlParameters"], created=consent["CreationDateTime"])
    decision = limits_for_payment(params, amount="12.50", currency="GBP", now=datetime.now(timezone.utc))
    Rejection        -> refuse the payment (decision.reason, module list below); nothing to claim.
    PaymentLimits  -> claim decision.amount_minor against decision.periods (store.vrp.VrpUsage.claim).

Period semantics, from the v3.1.11 specification (resources-and-data-models/vrp/domestic-vrp-consents.md, data
dictionary of OBDomesticVRPControlParameters and its "Examples of Periodic Limits"):

* Dates, not instants. "The time element of the date should be disregarded in computing the date range and
  pro-rating": ValidFromDateTime and ValidToDateTime are taken as whole days, both inclusive, and every period
  starts and ends at midnight. The spec names no time zone: dates are those of UTC (an instant is converted to UTC,
  then its date taken; `now` likewise). A period instance is the half-open [start, end) of UTC midnights.
* The consent's first day (`ControlParameters.anchor`): ValidFromDateTime's date if given, else the consent's
  creation date ("Specifies whether the period starts on the date of consent creation or lines up with a calendar").
* Consent alignment: periods start on the first day and repeat every period length: Day 1 day, Week 7, Fortnight
  14; Month 1 calendar month, Half-year 6, Year 12, each counted from the first day (not from the previous period),
  the day clamped to the month's last: first day 31 Jan -> 28/29 Feb -> 31 Mar -> 30 Apr; 29 Feb 2024 -> 28 Feb 2025.
  (Spec example 2: created 05-Jun-2021, Month/Consent: 05-Jun..04-Jul, 05-Jul..04-Aug, ...)
* Calendar alignment: Day the calendar day; Week Monday to Sunday (ISO 8601); Month the calendar month; Half-year
  1 Jan-30 Jun and 1 Jul-31 Dec; Year the calendar year. A Fortnight cannot be Calendar-aligned: "for a PeriodType
  of Fortnight the PeriodAlignment must be Consent" (the ISO calendar has no fortnights); such a consent is invalid
  (`parse_control_parameters` raises InvalidControlParameters, so the consent API can refuse it with a 400).
* Calendar pro-rating: "If the PeriodAlignment is Calendar, the limit is pro-rated in the first period to the
  remaining number of days": in the calendar period holding the consent's first day, the limit is
  Amount x (days from the first day to the period's end) / (days in the period), rounded down to a minor unit.
  (Spec example 1: created 06-Jun-2021, Month/Calendar 300.00: 06-Jun..30-Jun 250.00, then 300.00 a month;
  example 3: Year/Calendar 500.00 from 06-Jun-2021: 500 x 209 / 365 = 286.30.)

Amounts are integers of the currency's minor unit (ISO 4217 exponent; 2 unless listed in MINOR_DIGITS). The schema
allows five decimals: a limit is rounded down to a minor unit and a payment up, so rounding never lets more through.
Limits above MAX_MINOR (the store's exact-integer bound) are lowered to it.

Rejection reasons (`Rejection.reason`):
    vrp.not_yet_valid      today (UTC) is before ValidFromDateTime's date
    vrp.expired            today (UTC) is after ValidToDateTime's date
    vrp.currency_mismatch  the payment's currency is not that of MaximumIndividualAmount and every PeriodicLimit
    vrp.amount_invalid     the payment's amount is not positive
    vrp.amount_over_maximum  the payment is over MaximumIndividualAmount
A payment that passes these may still be refused by a periodic limit: that is the store's claim (store.vrp), which
decides it atomically against what the consent's other payments have used.
"""
from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

PERIOD_TYPES = ("Day", "Week", "Fortnight", "Month", "Half-year", "Year")
ALIGNMENTS = ("Consent", "Calendar")
_DAYS = {"Day": 1, "Week": 7, "Fortnight": 14}              # period lengths counted in days
_MONTHS = {"Month": 1, "Half-year": 6, "Year": 12}          # ... and in calendar months

# ISO 4217 currencies whose minor unit is not the hundredth (the rest have 2 decimals).
MINOR_DIGITS: Mapping[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
                     "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
MAX_MINOR = 2 ** 52  # store.vrp.MAX_MINOR: sums of amounts stay exact integers in Redis's Lua (doubles)


class InvalidControlParameters(ValueError):
    """ControlParameters the specification does not allow (beyond its JSON schema), or that cannot be read."""


@dataclass(frozen=True, slots=True)
class PeriodicLimit:
    period_type: str    # PERIOD_TYPES
    alignment: str      # ALIGNMENTS
    amount: Decimal     # as the consent states it
    currency: str

    @property
    def name(self) -> str:
        return f"{self.period_type}/{self.alignment}"


@dataclass(frozen=True, slots=True)
class ControlParameters:
    valid_from: date | None                 # ValidFromDateTime's date (UTC), inclusive
    valid_to: date | None                   # ValidToDateTime's date (UTC), inclusive
    anchor: date                            # the consent's first day: valid_from, else the creation date (UTC)
    maximum_individual: Decimal             # MaximumIndividualAmount, as stated
    currency: str                           # MaximumIndividualAmount's currency
    periodic_limits: tuple[PeriodicLimit, ...]
    vrp_types: tuple[str, ...] = ()
    psu_authentication_methods: tuple[str, ...] = ()
    psu_interaction_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Period:
    """One limit's current period instance."""
    limit: PeriodicLimit
    period_id: str      # "<PeriodType>/<PeriodAlignment>/<first day, ISO>": stable, names the limit and the instance
    start: datetime     # UTC midnight, inclusive
    end: datetime       # UTC midnight, exclusive
    limit_minor: int    # the limit for this instance, pro-rated if it is a Calendar period holding the first day


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str         # module doc
    detail: str


@dataclass(frozen=True, slots=True)
class PaymentLimits:
    """The payment may go if it fits in every period: claim `amount_minor` against `periods` (store.vrp)."""
    amount_minor: int
    currency: str
    periods: tuple[tuple[str, int], ...]    # (period_id, limit_minor), one per distinct period instance


def parse_control_parameters(raw: Mapping[str, Any], created: datetime | str) -> ControlParameters:
    """A consent's ControlParameters (schema-valid already) and its CreationDateTime → ControlParameters.

    Raises InvalidControlParameters for what the spec forbids beyond the schema (a Calendar-aligned Fortnight,
    ValidToDateTime before ValidFromDateTime) or values that cannot be read."""
    try:
        valid_from = _utc_date(raw["ValidFromDateTime"]) if raw.get("ValidFromDateTime") else None
        valid_to = _utc_date(raw["ValidToDateTime"]) if raw.get("ValidToDateTime") else None
        anchor = valid_from if valid_from is not None else _utc_date(created)
        maximum = raw["MaximumIndividualAmount"]
        limits = tuple(PeriodicLimit(item["PeriodType"], item["PeriodAlignment"], _decimal(item["Amount"]),
                                     str(item["Currency"])) for item in raw["PeriodicLimits"])
        params = ControlParameters(
            valid_from=valid_from, valid_to=valid_to, anchor=anchor,
            maximum_individual=_decimal(maximum["Amount"]), currency=str(maximum["Currency"]),
            periodic_limits=limits, vrp_types=tuple(raw.get("VRPType", ())),
            psu_authentication_methods=tuple(raw.get("PSUAuthenticationMethods", ())),
            psu_interaction_types=tuple(raw.get("PSUInteractionTypes", ())))
    except InvalidControlParameters:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidControlParameters(f"unreadable ControlParameters: {type(exc).__name__}: {exc}") from exc
    for limit in limits:
        if limit.period_type not in PERIOD_TYPES or limit.alignment not in ALIGNMENTS:
            raise InvalidControlParameters(f"unknown period {limit.name}")
        if limit.period_type == "Fortnight" and limit.alignment == "Calendar":
            raise InvalidControlParameters("a Fortnight limit must have PeriodAlignment Consent (OB VRP v3.1.11)")
    if not limits:
        raise InvalidControlParameters("PeriodicLimits is empty")
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise InvalidControlParameters("ValidToDateTime is before ValidFromDateTime")
    return params


def limits_for_payment(params: ControlParameters, amount: Decimal | str, currency: str,
                       now: datetime) -> Rejection | PaymentLimits:
    """Refuse the payment (validity window, currency, amount, MaximumIndividualAmount), or say what it must fit in:
    one (period_id, limit_minor) per distinct current period (two limits naming the same period: the lower)."""
    today = _today(now)
    if params.valid_from is not None and today < params.valid_from:
        return Rejection("vrp.not_yet_valid", f"the consent is valid from {params.valid_from.isoformat()}")
    if params.valid_to is not None and today > params.valid_to:
        return Rejection("vrp.expired", f"the consent was valid until {params.valid_to.isoformat()}")
    currencies = {params.currency, *(limit.currency for limit in params.periodic_limits)}
    if currencies != {currency}:
        return Rejection("vrp.currency_mismatch",
                       f"the payment is in {currency}, the consent's limits in {', '.join(sorted(currencies))}")
    value = _decimal(amount)
    if value <= 0:
        return Rejection("vrp.amount_invalid", "the amount must be positive")
    if value > params.maximum_individual:
        return Rejection("vrp.amount_over_maximum",
                       f"{value} {currency} is over the MaximumIndividualAmount of {params.maximum_individual}")
    merged: dict[str, int] = {}
    for period in current_periods(params, now):
        merged[period.period_id] = min(merged.get(period.period_id, period.limit_minor), period.limit_minor)
    return PaymentLimits(to_minor(value, currency, ROUND_CEILING), currency, tuple(merged.items()))


def current_periods(params: ControlParameters, now: datetime) -> tuple[Period, ...]:
    """Each periodic limit's period instance holding `now`, in the consent's order."""
    today = _today(now)
    return tuple(_period(limit, params.anchor, today) for limit in params.periodic_limits)


def period_bounds(params: ControlParameters, now: datetime) -> tuple[tuple[datetime, datetime], ...]:
    """(start, end) of each limit's current period, in the consent's order: [start, end), UTC midnights."""
    return tuple((period.start, period.end) for period in current_periods(params, now))


def to_minor(amount: Decimal, currency: str, rounding: str = ROUND_FLOOR) -> int:
    """An amount in the currency's minor unit (ISO 4217 exponent), rounded as asked (down by default)."""
    return int((amount.scaleb(MINOR_DIGITS.get(currency, 2))).to_integral_value(rounding=rounding))


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months, the day clamped to the month's last (31 Jan + 1 = 28/29 Feb)."""
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _period(limit: PeriodicLimit, anchor: date, today: date) -> Period:
    if limit.alignment == "Consent":
        start, end = _consent_period(limit.period_type, anchor, today)
        full = True
    else:
        start, end = _calendar_period(limit.period_type, today)
        full = not start < anchor < end
    limit_minor = to_minor(limit.amount, limit.currency)
    if not full:  # the calendar period holding the consent's first day: pro-rated to the days left
        limit_minor = limit_minor * (end - anchor).days // (end - start).days
    return Period(limit, f"{limit.name}/{start.isoformat()}", _midnight(start), _midnight(end),
                  min(limit_minor, MAX_MINOR))


def _consent_period(period_type: str, anchor: date, today: date) -> tuple[date, date]:
    """The instance holding `today` of periods repeating from `anchor` (the first one if today is before it)."""
    if period_type in _DAYS:
        length = _DAYS[period_type]
        start = anchor + timedelta(days=max(0, (today - anchor).days // length) * length)
        return start, start + timedelta(days=length)
    length = _MONTHS[period_type]
    count = max(0, ((today.year - anchor.year) * 12 + today.month - anchor.month) // length)
    if count and add_months(anchor, count * length) > today:  # the day of the month not reached yet
        count -= 1
    return add_months(anchor, count * length), add_months(anchor, (count + 1) * length)


def _calendar_period(period_type: str, today: date) -> tuple[date, date]:
    if period_type == "Day":
        return today, today + timedelta(days=1)
    if period_type == "Week":
        monday = today - timedelta(days=today.weekday())
        return monday, monday + timedelta(days=7)
    if period_type == "Month":
        start = today.replace(day=1)
    elif period_type == "Half-year":
        start = date(today.year, 1 if today.month <= 6 else 7, 1)
    elif period_type == "Year":
        start = date(today.year, 1, 1)
    else:
        raise InvalidControlParameters(f"no calendar alignment for {period_type}")
    return start, add_months(start, _MONTHS[period_type])


def _decimal(value: Decimal | str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return number


def _utc_date(value: datetime | str) -> date:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise InvalidControlParameters(f"a date-time without its offset: {value!r}")
    return moment.astimezone(timezone.utc).date()


def _today(now: datetime) -> date:
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return now.astimezone(timezone.utc).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)

