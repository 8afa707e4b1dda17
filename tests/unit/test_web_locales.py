"""The customer pages' language and formats (web.locales, web.language, web.pages.in_language) and the bank's brand
(web.brand, the settings OBGW_BANK_NAME / OBGW_BANK_LOGO)."""
from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone

import pytest
from starlette.requests import Request
from starlette.responses import Response

from gateway.consents.model import Kind
from gateway.settings import Settings, SettingsError
from gateway.web import language, locales
from gateway.web.brand import Brand
from gateway.web.pages import in_language, page, prefer

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("header", "chosen"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"), ("zh", "zh-CN"), ("zh-Hans-CN", "zh-CN"), ("en-GB,en;q=0.9", "en"),
    ("fr-FR, zh;q=0.5", "zh-CN"), ("zh;q=0.4, en;q=0.6", "en"), ("zh-TW", None), ("fr", None), ("", None),
    ("zh;q=0, en", "en"), ("zh;q=abc, en;q=0.1", "en"), ("*", None)])
def test_accept_language_picks_the_best_language_the_gateway_speaks(header, chosen):
    assert locales.from_accept_language(header) == chosen


@pytest.mark.parametrize(("query", "cookie", "header", "chosen"), [
    ("zh-CN", "en", "en", ("zh-CN", True)),      # the page's own switch wins, and is remembered
    ("en", None, "zh-CN", ("en", True)),
    (None, "zh-CN", "en", ("zh-CN", False)),     # then the choice kept for the journey
    (None, None, "zh", ("zh-CN", False)),        # then the browser's
    ("fr", None, "zh", ("zh-CN", False)),        # a language it does not speak is ignored
    (None, "junk", None, ("en", False)),
])
def test_the_query_then_the_cookie_then_the_browser_choose(query, cookie, header, chosen):
    assert locales.choose(query, cookie, header) == chosen


def test_ui_locales_names_the_first_language_the_gateway_speaks():
    assert locales.from_ui_locales("fr-CA zh-CN en") == "zh-CN" and locales.from_ui_locales("de") is None


@pytest.mark.parametrize(("locale", "date", "money", "coded"), [
    ("en", "1 January 2027", "£1000.00", "100.00 CHF"), ("zh-CN", "2027年1月1日", "£1000.00", "100.00 CHF")])
def test_dates_and_amounts_are_written_as_each_language_writes_them(locale, date, money, coded):
    assert locales.day(locale, "2027-01-01T10:00:00+00:00") == date
    assert locales.money(locale, {"Amount": "1000.00", "Currency": "GBP"}) == money  # the figure as the app sent it
    assert locales.money(locale, {"Amount": "100.00", "Currency": "CHF"}) == coded


def test_a_dollar_is_told_apart_from_a_yuan_in_chinese():
    assert locales.money("zh-CN", {"Amount": "5.00", "Currency": "USD"}) == "US$5.00"


@pytest.mark.parametrize(("ts", "en", "zh"), [
    ("2026-12-07T09:30:00+00:00", "today 09:30", "今天 09:30"),
    ("2026-12-06T14:02:00+00:00", "yesterday 14:02", "昨天 14:02"),
    ("2026-07-03T14:02:00+00:00", "3 July 2026, 15:02", "2026年7月3日 15:02"),  # London summer time
])
def test_a_moment_is_said_as_a_person_says_it_in_the_banks_time(ts, en, zh):
    assert locales.moment("en", ts, NOW) == en and locales.moment("zh-CN", ts, NOW) == zh


@pytest.mark.parametrize(("method", "route", "status", "words"), [
    ("GET", "/open-banking/v3.1/aisp/accounts", 200, "read your account details, today 11:00"),
    ("GET", "/open-banking/v3.1/aisp/accounts/{AccountId}/balances", 200, "read your balance, today 11:00"),
    ("GET", "/open-banking/v3.1/aisp/accounts/{AccountId}/transactions", 403,
     "read your transactions (refused), today 11:00"),
    ("GET", "/open-banking/v3.1/aisp/accounts/{AccountId}/statements/{StatementId}/file", 200,
     "read your statements, today 11:00"),
    ("GET", "/open-banking/v3.1/aisp/accounts/{AccountId}/scheduled-payments", 200,
     "read your scheduled payments, today 11:00"),
    ("POST", "/open-banking/v3.1/pisp/domestic-vrps", 201, "made a payment, today 11:00"),
    ("GET", "/open-banking/v3.1/pisp/domestic-payments/{DomesticPaymentId}", 200,
     "checked a payment's progress, today 11:00"),
    ("POST", "/open-banking/v3.1/cbpii/funds-confirmations", 201,
     "checked whether you have enough money, today 11:00"),
    ("GET", "/open-banking/v3.1/aisp/something-new", 200, "used this consent, today 11:00"),
])
def test_a_recent_access_reads_as_what_the_app_did(method, route, status, words):
    access = {"ts": "2026-12-07T11:00:00+00:00", "method": method, "route": route, "status": status}
    assert language.access_in_words("en", access, NOW) == words


def test_a_recent_access_in_chinese():
    access = {"ts": "2026-12-06T14:02:00+00:00", "method": "GET", "status": 200,
              "route": "/open-banking/v3.1/aisp/accounts/{AccountId}/balances"}
    assert language.access_in_words("zh-CN", access, NOW) == "昨天 14:02，读取了您的余额"


def test_a_payment_reads_in_each_language_with_its_date_payee_and_reference():
    terms = {"Initiation": {"InstructedAmount": {"Amount": "12.34", "Currency": "GBP"},
                            "RequestedExecutionDateTime": "2027-01-02T00:00:00+00:00",
                            "CreditorAccount": {"Name": "ACME Utilities"},
                            "RemittanceInformation": {"Reference": "INV-0042"}}}
    assert language.what_the_payment_does("en", Kind.DOMESTIC_SCHEDULED_PAYMENT, terms) == [
        "To: ACME Utilities", "Amount: £12.34 on 2 January 2027", "Reference: INV-0042"]
    assert language.what_the_payment_does("zh-CN", Kind.DOMESTIC_SCHEDULED_PAYMENT, terms) == [
        "收款人：ACME Utilities", "金额：£12.34，于 2027年1月2日 付款", "附言：INV-0042"]


def _request(query: str = "", headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "GET", "path": "/login", "query_string": query.encode(),
                    "headers": raw})


def _shown(request: Request, hint: str | None = None) -> Response:
    async def handle() -> Response:
        prefer(hint)
        return page("dashboard_login.html", csrf_token="t0k", action="/login", error=None)
    return asyncio.run(in_language(request, Brand("Bank of Tests", "data:image/png;base64,AA=="), "/login", handle))


def test_a_page_speaks_the_browsers_language_and_says_so_in_html_lang():
    shown = _shown(_request(headers={"Accept-Language": "zh-CN,zh;q=0.9"})).body.decode()
    assert '<html lang="zh-CN">' in shown and "查看和撤回您已给予的授权" in shown
    assert "See and withdraw" not in shown
    assert 'href="/login?lang=en"' in shown and 'href="/login?lang=zh-CN"' in shown  # the switch to either
    english = _shown(_request()).body.decode()
    assert '<html lang="en-GB">' in english and "See and withdraw the consents you have given" in english


def test_the_language_asked_for_is_kept_in_a_secure_cookie_and_a_hint_only_when_the_customer_chose_none():
    asked = _shown(_request("lang=zh-CN", {"Accept-Language": "en"}))
    cookie = asked.headers["set-cookie"]
    assert cookie.startswith("__Host-obgw-lang=zh-CN;") and "Secure" in cookie and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and '<html lang="zh-CN">' in asked.body.decode()
    assert "set-cookie" not in _shown(_request(headers={"Accept-Language": "zh"})).headers  # a guess is not kept
    hinted = _shown(_request(headers={"Accept-Language": "en"}), hint="zh-CN")
    assert '<html lang="zh-CN">' in hinted.body.decode() and "zh-CN" in hinted.headers["set-cookie"]
    chosen = _shown(_request(headers={"Cookie": "__Host-obgw-lang=en"}), hint="zh-CN")
    assert '<html lang="en-GB">' in chosen.body.decode() and "set-cookie" not in chosen.headers


def test_the_page_shows_the_banks_name_and_logo_and_allows_only_that_image():
    shown = _shown(_request())
    body = shown.body.decode()
    assert "Bank of Tests" in body and 'src="data:image/png;base64,AA=="' in body
    policy = shown.headers["content-security-policy"]
    assert "img-src data:" in policy and "script-src" not in policy and "default-src 'none'" in policy


def test_the_bank_logo_setting_takes_a_small_svg_or_png_and_refuses_anything_else(tmp_path):
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    settings = Settings.load(environ={"OBGW_BANK_NAME": "Bank of Tests", "OBGW_BANK_LOGO": str(logo)})
    brand = Brand.load(settings.bank_name, settings.bank_logo)
    assert brand.name == "Bank of Tests" and brand.logo.startswith("data:image/svg+xml;base64,")
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (64 * 1024 + 1))
    for value, says in ((str(tmp_path / "logo.gif"), "must be an .svg or .png file"),
                        (str(tmp_path / "missing.png"), "cannot be read"), (str(big), "at most 65536 bytes")):
        with pytest.raises(SettingsError, match=f"OBGW_BANK_LOGO=.*{says}"):
            Settings.load(environ={"OBGW_BANK_LOGO": value})
    with pytest.raises(SettingsError, match="OBGW_BANK_NAME"):
        Settings.load(environ={"OBGW_BANK_NAME": " "})


def test_a_page_rendered_outside_a_request_is_english_with_the_default_brand():
    body = page("error.html", message="m", interaction_id="iid").body.decode()
    assert '<html lang="en-GB">' in body and "obgw bank" in body and "?lang=" not in body


def test_a_vrp_reads_its_limits_and_window_in_each_language():
    terms = {"ControlParameters": {"MaximumIndividualAmount": {"Amount": "50.00", "Currency": "GBP"},
                                   "PeriodicLimits": [{"Amount": "100.00", "Currency": "GBP", "PeriodType": "Month",
                                                       "PeriodAlignment": "Calendar"}],
                                   "ValidToDateTime": "2027-03-31T00:00:00+00:00"}}
    assert language.what_the_payment_does("en", Kind.DOMESTIC_VRP, terms) == [
        "Payments of up to £50.00 each, whenever the app asks, without asking you again",
        "At most £100.00 a month (calendar)", "Valid until 31 March 2027"]
    assert language.what_the_payment_does("zh-CN", Kind.DOMESTIC_VRP, terms) == [
        "每笔最多 £50.00，应用可随时发起付款，无需再次征求您的同意", "每月最多 £100.00（按日历周期）",
        "有效期至 2027年3月31日"]


def test_a_page_loads_nothing_from_another_host():
    consent = {"consent_id": "aac-1", "tpp_name": "tpp-demo", "status": "Authorised", "granted": "", "expires": "",
               "will_see": ["x"], "payment": None, "accounts": ["a"], "accesses": [], "revocable": True,
               "consequence": "c"}
    for shown in (_shown(_request()), page("consents.html", customer_name="A", csrf_token="t", notice=None,
                                           consents=[consent])):
        targets = re.findall(r'(?:src|href|action)="([^"]*)"', shown.body.decode())
        assert targets and all(t.startswith(("/", "data:", "?", "#")) for t in targets), targets
        assert "@import" not in shown.body.decode() and "url(" not in shown.body.decode()
