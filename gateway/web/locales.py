"""Which language a customer page speaks (CONTRACT §6), and dates, times and amounts as that language writes them.

The choice, first that applies: the query parameter `lang` (`en` or `zh-CN`), the choice remembered from it in the
`__Host-obgw-lang` cookie (kept for the rest of the journey, the dashboard too), the pushed request's OIDC
`ui_locales` (OIDC Core §3.1.2.1), then `Accept-Language` (RFC 9110 §12.5.4: the highest `q` this gateway speaks:
`zh`, `zh-CN`, `zh-Hans`, `zh-SG` → Chinese; `en-*` → English), else English. A `lang` the gateway does not speak
is ignored like an unknown Accept-Language tag: the page is still shown, in the next choice's language.

Formats come from the catalogue (`format.*`): a date is "1 January 2027" / "2027年1月1日"; a time is the bank's
local time (Europe/London, a UK bank's customers), 24-hour; an amount's figure is shown exactly as the app sent it
(never re-rounded), with the currency's symbol or its ISO 4217 code.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.web.catalogue import MESSAGES, text

DEFAULT = "en"
HTML_LANG = {"en": "en-GB", "zh-CN": "zh-CN"}  # <html lang> (BCP 47)
COOKIE = "__Host-obgw-lang"
BANK_TIME = ZoneInfo("Europe/London")


def supported(tag: str | None) -> str | None:
    """The catalogue's locale for a BCP 47 language tag, or None when this gateway does not speak it."""
    tag = (tag or "").strip().lower().replace("_", "-")
    if tag == "zh" or tag.split("-")[:2] in (["zh", "cn"], ["zh", "hans"], ["zh", "sg"]):
        return "zh-CN"
    if tag == "en" or tag.startswith("en-"):
        return "en"
    return None


def from_accept_language(header: str | None) -> str | None:
    """The first language the gateway speaks among an Accept-Language header's ranges, by `q` (ties: in order)."""
    ranked = []
    for index, part in enumerate((header or "").split(",")):
        tag, *params = part.split(";")
        weight = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight > 0:
            ranked.append((-weight, index, tag))
    for _, _, tag in sorted(ranked):
        found = supported(tag)
        if found:
            return found
    return None


def from_ui_locales(value: str | None) -> str | None:
    """OIDC `ui_locales`: space-separated tags in order of preference."""
    return next((found for tag in (value or "").split() if (found := supported(tag))), None)


def choose(query: str | None, cookie: str | None, accept_language: str | None) -> tuple[str, bool]:
    """(the page's locale, whether the query asked for it: then the cookie remembers it)."""
    asked = supported(query)
    if asked:
        return asked, True
    return supported(cookie) or from_accept_language(accept_language) or DEFAULT, False


def day(locale: str, moment: str | datetime | None) -> str:
    """An ISO 8601 date-time (or a datetime) as the customer reads a date; "" for none."""
    if not moment:
        return ""
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return _date(locale, when.date() if when.tzinfo is None else when.astimezone(BANK_TIME).date())


def _date(locale: str, when: date) -> str:
    return text(locale, "format.date", day=when.day, month=when.month, year=when.year,
                month_name=text(locale, f"month.{when.month}"))


def moment(locale: str, ts: str, now: datetime) -> str:
    """When something happened, as a person says it: "today 14:02", "yesterday 09:15", "3 December 2026, 14:02"."""
    when = datetime.fromisoformat(ts).astimezone(BANK_TIME)
    today = now.astimezone(BANK_TIME).date()
    clock = f"{when:%H:%M}"
    if when.date() == today:
        return text(locale, "format.today", time=clock)
    if when.date() == today - timedelta(days=1):
        return text(locale, "format.yesterday", time=clock)
    return text(locale, "format.date_time", date=_date(locale, when.date()), time=clock)


def money(locale: str, amount: dict) -> str:
    """`{"Amount": "25.00", "Currency": "GBP"}` → "£25.00"; a currency without a symbol keeps its code: "100.00 CHF"."""
    code, figure = str(amount.get("Currency", "")), str(amount.get("Amount", ""))
    key = f"currency.{code}"
    if key in MESSAGES[locale]:
        return text(locale, "format.money", symbol=text(locale, key), figure=figure)
    return text(locale, "format.money_code", figure=figure, code=code)
