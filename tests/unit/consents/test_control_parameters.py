"""consents.control_parameters: reading a VRP consent's ControlParameters, and the period instances (and limits) a
payment must fit in, for every PeriodType and PeriodAlignment, at the edges of periods, with the spec's own examples."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from gateway.consents.control_parameters import (
    MAX_MINOR,
    InvalidControlParameters,
    PaymentLimits,
    Rejection,
    add_months,
    current_periods,
    limits_for_payment,
    parse_control_parameters,
    period_bounds,
    to_minor,
)
from gateway.store import vrp as store_vrp

UTC = timezone.utc
CREATED = "2021-06-05T10:30:00+00:00"


def _params(*limits: tuple[str, str, str], valid_from: str | None = None, valid_to: str | None = None,
            maximum: str = "1000.00", currency: str = "GBP", created: str = CREATED, limit_currency: str | None = None):
    raw: dict = {
        "MaximumIndividualAmount": {"Amount": maximum, "Currency": currency},
        "PeriodicLimits": [{"PeriodType": kind, "PeriodAlignment": alignment, "Amount": amount,
                            "Currency": limit_currency or currency} for kind, alignment, amount in limits],
        "VRPType": ["UK.OBIE.VRPType.Sweeping"],
        "PSUAuthenticationMethods": ["UK.OBIE.SCANotRequired"],
    }
    if valid_from:
        raw["ValidFromDateTime"] = valid_from
    if valid_to:
        raw["ValidToDateTime"] = valid_to
    return parse_control_parameters(raw, created)


def _at(day: str, clock: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}+00:00")


def _midnight(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T00:00:00+00:00")


def _one(params, now: datetime):
    (period,) = current_periods(params, now)
    return period


# --- parsing -------------------------------------------------------------------------------------------------------

def test_parse_keeps_everything_immutable_and_reads_dates_in_utc():
    params = _params(("Month", "Calendar", "300.00"), ("Day", "Consent", "50"),
                     valid_from="2026-03-01T00:30:00+02:00", valid_to="2026-12-31T23:59:59Z")
    assert params.valid_from == date(2026, 2, 28)  # 2026-02-28T22:30Z: the UTC date
    assert params.valid_to == date(2026, 12, 31)
    assert params.anchor == params.valid_from
    assert params.maximum_individual == Decimal("1000.00") and params.currency == "GBP"
    assert [(each.period_type, each.alignment, each.amount) for each in params.periodic_limits] == [
        ("Month", "Calendar", Decimal("300.00")), ("Day", "Consent", Decimal("50"))]
    assert params.vrp_types == ("UK.OBIE.VRPType.Sweeping",)
    assert params.psu_authentication_methods == ("UK.OBIE.SCANotRequired",)
    with pytest.raises(AttributeError):
        params.currency = "EUR"  # frozen


def test_without_valid_from_the_anchor_is_the_creation_date():
    assert _params(("Week", "Consent", "10")).anchor == date(2021, 6, 5)
    created = datetime(2021, 6, 5, 23, 30, tzinfo=timezone(timedelta(hours=-2)))  # 2021-06-06T01:30Z
    assert _params(("Week", "Consent", "10"), created=created).anchor == date(2021, 6, 6)


def test_a_calendar_fortnight_is_refused_as_the_spec_requires():
    with pytest.raises(InvalidControlParameters, match="Fortnight"):
        _params(("Fortnight", "Calendar", "10"))


@pytest.mark.parametrize("change", [
    {"ValidFromDateTime": "2026-05-01T00:00:00Z", "ValidToDateTime": "2026-04-30T00:00:00Z"},
    {"ValidFromDateTime": "2026-05-01T00:00:00"},   # no offset
    {"PeriodicLimits": []},
    {"PeriodicLimits": [{"PeriodType": "Quarter", "PeriodAlignment": "Calendar", "Amount": "1", "Currency": "GBP"}]},
    {"MaximumIndividualAmount": {"Amount": "lots", "Currency": "GBP"}},
])
def test_unusable_control_parameters_are_refused(change):
    raw = {"MaximumIndividualAmount": {"Amount": "10", "Currency": "GBP"},
           "PeriodicLimits": [{"PeriodType": "Day", "PeriodAlignment": "Calendar", "Amount": "1", "Currency": "GBP"}],
           **change}
    with pytest.raises(InvalidControlParameters):
        parse_control_parameters(raw, CREATED)


def test_a_naive_now_is_an_error():
    with pytest.raises(ValueError):
        current_periods(_params(("Day", "Calendar", "1")), datetime(2026, 1, 1, 12))


# --- amounts -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("amount", "currency", "floor", "ceiling"), [
    ("12.34", "GBP", 1234, 1234), ("12.345", "GBP", 1234, 1235), ("12", "GBP", 1200, 1200),
    ("1000", "JPY", 1000, 1000), ("10.5", "JPY", 10, 11), ("1.2345", "KWD", 1234, 1235),
    ("0.00001", "EUR", 0, 1), ("9999999999999.99999", "GBP", 999999999999999, 1000000000000000),
])
def test_minor_units_round_limits_down_and_payments_up(amount, currency, floor, ceiling):
    assert to_minor(Decimal(amount), currency) == floor
    params = _params(("Day", "Calendar", amount), maximum=amount, currency=currency)
    decision = limits_for_payment(params, amount, currency, _at("2026-01-02"))
    assert decision == PaymentLimits(ceiling, currency, (("Day/Calendar/2026-01-02", floor),))


def test_limits_are_capped_at_the_stores_exact_integer_bound():
    assert MAX_MINOR == store_vrp.MAX_MINOR
    params = _params(("Year", "Consent", "9999999999999.9999"), maximum="1", currency="CLF")
    assert _one(params, _at("2026-01-02")).limit_minor == MAX_MINOR


# --- refusals ------------------------------------------------------------------------------------------------------

def test_the_validity_window_is_whole_utc_days_both_inclusive():
    params = _params(("Day", "Calendar", "100"), valid_from="2026-03-10T15:00:00Z", valid_to="2026-03-20T09:00:00Z")
    def reason(now: datetime) -> str | None:
        decision = limits_for_payment(params, "1.00", "GBP", now)
        return decision.reason if isinstance(decision, Rejection) else None
    assert reason(_midnight("2026-03-10") - timedelta(microseconds=1)) == "vrp.not_yet_valid"
    assert reason(_midnight("2026-03-10")) is None            # the time of ValidFromDateTime is disregarded
    assert reason(_at("2026-03-20", "23:59:59.999999")) is None  # ... and that of ValidToDateTime
    assert reason(_midnight("2026-03-21")) == "vrp.expired"
    # another offset: 2026-03-21T00:30+01:00 is still 2026-03-20 in UTC
    assert reason(datetime(2026, 3, 21, 0, 30, tzinfo=timezone(timedelta(hours=1)))) is None


def test_a_payment_in_another_currency_is_refused():
    params = _params(("Month", "Calendar", "100"))
    decision = limits_for_payment(params, "1.00", "EUR", _at("2026-01-05"))
    assert isinstance(decision, Rejection) and decision.reason == "vrp.currency_mismatch"
    mixed = _params(("Month", "Calendar", "100"), limit_currency="EUR")  # maximum in GBP, limit in EUR
    for currency in ("GBP", "EUR"):
        decision = limits_for_payment(mixed, "1.00", currency, _at("2026-01-05"))
        assert isinstance(decision, Rejection) and decision.reason == "vrp.currency_mismatch"


def test_the_individual_maximum_is_exact_and_inclusive():
    params = _params(("Month", "Calendar", "1000"), maximum="250.50")
    assert isinstance(limits_for_payment(params, "250.50", "GBP", _at("2026-01-05")), PaymentLimits)
    over = limits_for_payment(params, "250.51", "GBP", _at("2026-01-05"))
    assert isinstance(over, Rejection) and over.reason == "vrp.amount_over_maximum"
    sub_minor = limits_for_payment(params, "250.50001", "GBP", _at("2026-01-05"))
    assert isinstance(sub_minor, Rejection) and sub_minor.reason == "vrp.amount_over_maximum"


@pytest.mark.parametrize("amount", ["0", "0.00", "-1"])
def test_a_payment_must_be_positive(amount):
    decision = limits_for_payment(_params(("Day", "Calendar", "10")), amount, "GBP", _at("2026-01-05"))
    assert isinstance(decision, Rejection) and decision.reason == "vrp.amount_invalid"


def test_a_payment_gets_one_entry_per_distinct_period_the_lower_limit_winning():
    params = _params(("Month", "Calendar", "300"), ("Day", "Consent", "40"), ("Month", "Calendar", "200"),
                     ("Week", "Calendar", "100"), valid_from="2026-01-01T00:00:00Z")
    decision = limits_for_payment(params, Decimal("12.50"), "GBP", _at("2026-02-18"))
    assert decision == PaymentLimits(1250, "GBP", (
        ("Month/Calendar/2026-02-01", 20000), ("Day/Consent/2026-02-18", 4000), ("Week/Calendar/2026-02-16", 10000)))


# --- calendar alignment --------------------------------------------------------------------------------------------

ANCIENT = "2000-01-01T00:00:00Z"  # consent long started: no pro-rating in the periods below


@pytest.mark.parametrize(("kind", "now", "start", "end"), [
    ("Day", "2026-03-15", "2026-03-15", "2026-03-16"),
    ("Week", "2026-03-16", "2026-03-16", "2026-03-23"),      # a Monday: its own week
    ("Week", "2026-03-22", "2026-03-16", "2026-03-23"),      # the Sunday: the same week
    ("Week", "2026-12-31", "2026-12-28", "2027-01-04"),      # a week across the year
    ("Month", "2026-02-01", "2026-02-01", "2026-03-01"),
    ("Month", "2026-02-28", "2026-02-01", "2026-03-01"),
    ("Month", "2024-02-29", "2024-02-01", "2024-03-01"),     # leap year
    ("Month", "2026-12-31", "2026-12-01", "2027-01-01"),
    ("Half-year", "2026-01-01", "2026-01-01", "2026-07-01"),
    ("Half-year", "2026-06-30", "2026-01-01", "2026-07-01"),
    ("Half-year", "2026-07-01", "2026-07-01", "2027-01-01"),
    ("Half-year", "2026-12-31", "2026-07-01", "2027-01-01"),
    ("Year", "2026-01-01", "2026-01-01", "2027-01-01"),
    ("Year", "2024-12-31", "2024-01-01", "2025-01-01"),
])
def test_calendar_periods(kind, now, start, end):
    params = _params((kind, "Calendar", "100"), valid_from=ANCIENT)
    for clock in ("00:00:00", "23:59:59.999999"):  # the first and the last instant of the day
        period = _one(params, _at(now, clock))
        assert (period.start, period.end) == (_midnight(start), _midnight(end))
        assert period.period_id == f"{kind}/Calendar/{start}"
        assert period.limit_minor == 10000
    assert period_bounds(params, _at(now)) == ((_midnight(start), _midnight(end)),)


@pytest.mark.parametrize("kind", ["Day", "Week", "Month", "Half-year", "Year"])
def test_a_calendar_period_ends_where_the_next_begins(kind):
    params = _params((kind, "Calendar", "100"), valid_from=ANCIENT)
    period = _one(params, _at("2026-05-13"))
    before = _one(params, period.end - timedelta(microseconds=1))
    after = _one(params, period.end)
    assert before.period_id == period.period_id
    assert after.period_id != period.period_id and after.start == period.end


@pytest.mark.parametrize(("kind", "amount", "first_day", "limit", "end"), [
    ("Month", "300.00", "2021-06-06", 25000, "2021-07-01"),    # spec example 1: 300 x 25 / 30
    ("Year", "500.00", "2021-06-06", 28630, "2022-01-01"),     # spec example 3: 500 x 209 / 365 = 286.30
    ("Week", "70.00", "2026-03-18", 5000, "2026-03-23"),       # a Wednesday: 5 days of 7
    ("Half-year", "181.00", "2026-06-30", 100, "2026-07-01"),  # the last day of 181
    ("Month", "29.00", "2024-02-15", 1500, "2024-03-01"),      # 15 days of February 2024's 29
    ("Day", "10.00", "2026-03-18", 1000, "2026-03-19"),        # a day is never split
])
def test_a_calendar_limit_is_pro_rated_in_the_period_holding_the_first_day(kind, amount, first_day, limit, end):
    params = _params((kind, "Calendar", amount), valid_from=f"{first_day}T13:45:00Z")
    period = _one(params, _at(first_day))
    assert (period.limit_minor, period.end) == (limit, _midnight(end))
    later = _one(params, period.end)
    assert later.limit_minor == to_minor(Decimal(amount), "GBP")  # the next period: whole again


def test_the_calendar_period_starting_on_the_first_day_is_whole():
    params = _params(("Month", "Calendar", "300.00"), valid_from="2026-07-01T08:00:00Z")
    assert _one(params, _at("2026-07-10")).limit_minor == 30000


def test_the_creation_date_anchors_pro_rating_without_valid_from():
    params = _params(("Month", "Calendar", "300.00"), created="2021-06-06T09:00:00Z")
    assert _one(params, _at("2021-06-20")).limit_minor == 25000


# --- consent alignment ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "first_day", "now", "start", "end"), [
    ("Day", "2026-03-18", "2026-03-18", "2026-03-18", "2026-03-19"),
    ("Day", "2026-03-18", "2026-04-02", "2026-04-02", "2026-04-03"),
    ("Week", "2026-03-18", "2026-03-24", "2026-03-18", "2026-03-25"),   # Wednesday to Tuesday
    ("Week", "2026-03-18", "2026-03-25", "2026-03-25", "2026-04-01"),
    ("Fortnight", "2026-03-18", "2026-03-31", "2026-03-18", "2026-04-01"),
    ("Fortnight", "2026-03-18", "2026-04-01", "2026-04-01", "2026-04-15"),
    ("Fortnight", "2026-03-18", "2026-12-25", "2026-12-23", "2027-01-06"),  # 20 fortnights on
    ("Month", "2021-06-05", "2021-06-05", "2021-06-05", "2021-07-05"),  # spec example 2
    ("Month", "2021-06-05", "2021-07-04", "2021-06-05", "2021-07-05"),
    ("Month", "2021-06-05", "2021-07-05", "2021-07-05", "2021-08-05"),
    ("Month", "2021-06-05", "2022-01-04", "2021-12-05", "2022-01-05"),
    ("Half-year", "2026-03-18", "2026-09-17", "2026-03-18", "2026-09-18"),
    ("Half-year", "2026-03-18", "2026-09-18", "2026-09-18", "2027-03-18"),
    ("Year", "2021-06-05", "2022-06-04", "2021-06-05", "2022-06-05"),   # spec example 4
    ("Year", "2021-06-05", "2023-06-05", "2023-06-05", "2024-06-05"),
])
def test_consent_periods(kind, first_day, now, start, end):
    params = _params((kind, "Consent", "100"), valid_from=f"{first_day}T17:00:00Z")
    for clock in ("00:00:00", "23:59:59.999999"):
        period = _one(params, _at(now, clock))
        assert (period.start, period.end) == (_midnight(start), _midnight(end))
        assert period.period_id == f"{kind}/Consent/{start}"
        assert period.limit_minor == 10000  # never pro-rated


@pytest.mark.parametrize(("first_day", "starts"), [
    # the day clamped to each month's last, always counted from the first day (31 Aug -> 30 Sep -> 31 Oct)
    ("2025-08-31", ["2025-08-31", "2025-09-30", "2025-10-31", "2025-11-30", "2025-12-31", "2026-01-31",
                    "2026-02-28", "2026-03-31"]),
    ("2024-01-31", ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]),   # leap February
    ("2025-01-30", ["2025-01-30", "2025-02-28", "2025-03-30"]),
])
def test_consent_months_clamp_to_the_end_of_the_month(first_day, starts):
    params = _params(("Month", "Consent", "100"), valid_from=f"{first_day}T00:00:00Z")
    for start, following in zip(starts, starts[1:]):
        period = _one(params, _midnight(following) - timedelta(microseconds=1))
        assert (period.start, period.end) == (_midnight(start), _midnight(following))
        assert _one(params, _midnight(following)).start == _midnight(following)


def test_a_consent_year_from_29_february():
    params = _params(("Year", "Consent", "100"), valid_from="2024-02-29T00:00:00Z")
    assert period_bounds(params, _at("2025-02-27")) == ((_midnight("2024-02-29"), _midnight("2025-02-28")),)
    assert period_bounds(params, _at("2025-02-28")) == ((_midnight("2025-02-28"), _midnight("2026-02-28")),)
    assert period_bounds(params, _at("2028-02-28")) == ((_midnight("2027-02-28"), _midnight("2028-02-29")),)
    assert period_bounds(params, _at("2028-02-29")) == ((_midnight("2028-02-29"), _midnight("2029-02-28")),)


def test_a_consent_half_year_from_31_august():
    params = _params(("Half-year", "Consent", "100"), valid_from="2025-08-31T00:00:00Z")
    assert period_bounds(params, _at("2026-02-27")) == ((_midnight("2025-08-31"), _midnight("2026-02-28")),)
    assert period_bounds(params, _at("2026-02-28")) == ((_midnight("2026-02-28"), _midnight("2026-08-31")),)


def test_before_its_first_day_a_consent_period_is_the_first_one():
    params = _params(("Week", "Consent", "100"), created="2026-03-18T00:00:00Z")  # a clock a little behind
    assert period_bounds(params, _at("2026-03-17")) == ((_midnight("2026-03-18"), _midnight("2026-03-25")),)


def test_period_bounds_follow_the_consents_order():
    params = _params(("Year", "Calendar", "1"), ("Day", "Consent", "1"), valid_from=ANCIENT)
    assert period_bounds(params, _at("2026-05-13")) == (
        (_midnight("2026-01-01"), _midnight("2027-01-01")), (_midnight("2026-05-13"), _midnight("2026-05-14")))


@pytest.mark.parametrize(("day", "months", "moved"), [
    ("2026-01-31", 1, "2026-02-28"), ("2024-01-31", 1, "2024-02-29"), ("2026-01-31", 13, "2027-02-28"),
    ("2026-12-15", 1, "2027-01-15"), ("2026-08-31", 6, "2027-02-28"), ("2024-02-29", 12, "2025-02-28"),
    ("2024-02-29", 48, "2028-02-29"),
])
def test_add_months(day, months, moved):
    assert add_months(date.fromisoformat(day), months) == date.fromisoformat(moved)
