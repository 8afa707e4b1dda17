"""When a standing order pays: the dates a UK OB `Frequency` gives, from the first payment on.

A frequency is read as a grid of days (every day, every working day, every n days, every n weeks on a weekday, a
weekday of each month, every n months on a day, the quarter days) laid from the first payment's week, month or year;
the order pays on its first payment date (and its first recurring one, if it names one), then on each grid day after.
Every payment is at the first payment's time of day and in its zone. Working days are Monday to Friday.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta

_QUARTER_DAYS = {
    "ENGLISH": ((3, 25), (6, 24), (9, 29), (12, 25)),
    "SCOTTISH": ((2, 2), (5, 15), (8, 1), (11, 11)),
    "RECEIVED": ((3, 20), (6, 19), (9, 24), (12, 20)),
}
_FREQUENCY = re.compile(
    r"(?P<daily>EvryDay)|(?P<working>EvryWorkgDay)|IntrvlDay:(?P<days>0[2-9]|[12][0-9]|3[01])"
    r"|IntrvlWkDay:(?P<weeks>0[1-9]):(?P<weekday>0[1-7])|WkInMnthDay:(?P<week>0[1-5]):(?P<week_day>0[1-7])"
    r"|IntrvlMnthDay:(?P<months>0[1-6]|12|24):(?P<day>-0[1-5]|0[1-9]|[12][0-9]|3[01])"
    r"|QtrDay:(?P<quarter>ENGLISH|SCOTTISH|RECEIVED)"
)

Grid = Callable[[date], Iterator[date]]


def _month(start: date, count: int) -> tuple[int, int]:
    """(year, month) `count` months after `start`'s."""
    index = start.year * 12 + start.month - 1 + count
    return index // 12, index % 12 + 1


def _day_in(year: int, month: int, day: int) -> date:
    """Day `day` of the month (negative counts back from its end, -1 being the last), kept within the month."""
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day, last) if day > 0 else last + 1 + day)


def _weekday_in(year: int, month: int, week: int, weekday: int) -> date:
    """The `week`th `weekday` (1 Monday .. 7 Sunday) of the month; the last one if there is no fifth."""
    first = date(year, month, 1)
    day = first + timedelta(days=(weekday - 1 - first.weekday()) % 7 + 7 * (week - 1))
    return day if day.month == month else day - timedelta(days=7)


def _every(step: int, working: bool = False) -> Grid:
    def grid(start: date) -> Iterator[date]:
        day = start
        while True:
            day += timedelta(days=step)
            if not working or day.weekday() < 5:
                yield day

    return grid


def _weekly(weeks: int, weekday: int) -> Grid:
    def grid(start: date) -> Iterator[date]:
        monday = start - timedelta(days=start.weekday())
        for number in range(10**6):
            yield monday + timedelta(weeks=weeks * number, days=weekday - 1)

    return grid


def _monthly(months: int, pick: Callable[[int, int], date]) -> Grid:
    def grid(start: date) -> Iterator[date]:
        for number in range(10**6):
            yield pick(*_month(start, months * number))

    return grid


def _quarterly(days: tuple[tuple[int, int], ...]) -> Grid:
    def grid(start: date) -> Iterator[date]:
        for year in range(start.year, 10000):
            yield from (date(year, month, day) for month, day in days)

    return grid


def _grid(frequency: str) -> Grid:
    found = _FREQUENCY.fullmatch(frequency)
    if found is None:
        raise ValueError(f"unsupported frequency {frequency!r}")
    part = found.groupdict()
    if part["daily"] or part["working"]:
        return _every(1, working=bool(part["working"]))
    if part["days"]:
        return _every(int(part["days"]))
    if part["weeks"]:
        return _weekly(int(part["weeks"]), int(part["weekday"]))
    if part["week"]:
        week, weekday = int(part["week"]), int(part["week_day"])
        return _monthly(1, lambda year, month: _weekday_in(year, month, week, weekday))
    if part["months"]:
        day = int(part["day"])
        return _monthly(int(part["months"]), lambda year, month: _day_in(year, month, day))
    return _quarterly(_QUARTER_DAYS[part["quarter"]])


def payment_dates(frequency: str, first: datetime, recurring: datetime | None = None) -> Iterator[datetime]:
    """The first payment, the first recurring one if given, then each day of the frequency's grid after them, without
    end. ValueError at once for a frequency this bank cannot follow or a first recurring payment not after the first.
    """
    grid = _grid(frequency)
    if recurring is not None and recurring <= first:
        raise ValueError("the first recurring payment must be after the first payment")

    def dates() -> Iterator[datetime]:
        yield first
        start = first
        if recurring is not None:
            yield recurring
            start = recurring
        for day in grid(start.date()):
            moment = datetime.combine(day, first.timetz())
            if moment > start:
                yield moment

    return dates()
