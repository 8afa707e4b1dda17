"""Standing-order dates: each UK OB Frequency pattern from a first payment on, and what the bank cannot follow."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from gateway.sandbox.schedule import payment_dates


def days(frequency: str, first: datetime, count: int, recurring: datetime | None = None) -> list[date]:
    return [moment.date() for moment in itertools.islice(payment_dates(frequency, first, recurring), count)]


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(("frequency", "first", "expected"), [
    # A first payment off the grid is followed by the grid's next day, then every interval.
    ("IntrvlMnthDay:01:15", at(2026, 6, 2), ["2026-06-02", "2026-06-15", "2026-07-15", "2026-08-15"]),
    ("IntrvlMnthDay:01:01", at(2026, 6, 20), ["2026-06-20", "2026-07-01", "2026-08-01", "2026-09-01"]),
    # The day is kept within each month; negative days count back from its end.
    ("IntrvlMnthDay:01:31", at(2026, 1, 31), ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]),
    ("IntrvlMnthDay:01:-01", at(2026, 1, 31), ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]),
    ("IntrvlMnthDay:01:-05", at(2026, 3, 1), ["2026-03-01", "2026-03-27", "2026-04-26", "2026-05-27"]),
    ("IntrvlMnthDay:03:01", at(2026, 1, 1), ["2026-01-01", "2026-04-01", "2026-07-01", "2026-10-01"]),
    ("IntrvlMnthDay:12:25", at(2026, 12, 25), ["2026-12-25", "2027-12-25", "2028-12-25", "2029-12-25"]),
    ("EvryDay", at(2026, 12, 30), ["2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02"]),
    # 2026-06-05 is a Friday: the weekend is skipped.
    ("EvryWorkgDay", at(2026, 6, 4), ["2026-06-04", "2026-06-05", "2026-06-08", "2026-06-09"]),
    ("IntrvlDay:10", at(2026, 6, 1), ["2026-06-01", "2026-06-11", "2026-06-21", "2026-07-01"]),
    # Every other Friday (day 05), counted from the first payment's week (that of Monday 2026-06-01).
    ("IntrvlWkDay:02:05", at(2026, 6, 1), ["2026-06-01", "2026-06-05", "2026-06-19", "2026-07-03"]),
    ("IntrvlWkDay:01:01", at(2026, 6, 1), ["2026-06-01", "2026-06-08", "2026-06-15", "2026-06-22"]),
    # The first Monday of each month; the fifth Friday, or the last where there is no fifth.
    ("WkInMnthDay:01:01", at(2026, 6, 1), ["2026-06-01", "2026-07-06", "2026-08-03", "2026-09-07"]),
    ("WkInMnthDay:05:05", at(2026, 5, 1), ["2026-05-01", "2026-05-29", "2026-06-26", "2026-07-31"]),
    ("QtrDay:ENGLISH", at(2026, 5, 1), ["2026-05-01", "2026-06-24", "2026-09-29", "2026-12-25"]),
    ("QtrDay:SCOTTISH", at(2026, 12, 1), ["2026-12-01", "2027-02-02", "2027-05-15", "2027-08-01"]),
    ("QtrDay:RECEIVED", at(2026, 1, 1), ["2026-01-01", "2026-03-20", "2026-06-19", "2026-09-24"]),
])
def test_each_frequency_pattern(frequency: str, first: datetime, expected: list[str]) -> None:
    assert days(frequency, first, len(expected)) == [date.fromisoformat(day) for day in expected]


def test_payments_keep_the_first_payments_time_and_zone() -> None:
    london_summer = timezone(timedelta(hours=1))
    first = datetime(2026, 6, 2, 7, 45, tzinfo=london_summer)
    dates = list(itertools.islice(payment_dates("IntrvlMnthDay:01:10", first), 3))
    assert [moment.isoformat() for moment in dates] == [
        "2026-06-02T07:45:00+01:00", "2026-06-10T07:45:00+01:00", "2026-07-10T07:45:00+01:00"]


def test_a_first_recurring_payment_moves_the_grid() -> None:
    assert days("IntrvlMnthDay:01:15", at(2026, 6, 1), 4, recurring=at(2026, 6, 20)) == [
        date(2026, 6, 1), date(2026, 6, 20), date(2026, 7, 15), date(2026, 8, 15)]


@pytest.mark.parametrize("frequency", ["NotKnown", "IntrvlMnthDay:07:01", "IntrvlDay:01", "Monthly", ""])
def test_frequencies_the_bank_cannot_follow_are_refused_at_once(frequency: str) -> None:
    with pytest.raises(ValueError, match="frequency"):
        payment_dates(frequency, at(2026, 6, 1))


def test_a_recurring_payment_must_come_after_the_first() -> None:
    with pytest.raises(ValueError, match="after the first"):
        payment_dates("EvryDay", at(2026, 6, 2), recurring=at(2026, 6, 1))
