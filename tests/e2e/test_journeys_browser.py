"""Every customer journey driven in headless Chromium, in English and in Simplified Chinese (chosen by the browser's
Accept-Language, or by the page's own switch), with every page checked at a 360 px phone's width and a desktop's:
axe-core finds no WCAG 2.0/2.1/2.2 A or AA violation, nothing needs scrolling sideways on the phone, `<html lang>`
names the language, nothing is loaded from another host, and the browser logs no error (a CSP refusal, a failed
load).

The journeys: for each consent kind the gateway serves (accounts, each payment type, VRP, confirmation of funds),
log in with the password and the authenticator's code, then agree or refuse; the dashboard's login and withdrawal.

Elements are found by the contract's field names (CONTRACT §4, §6) and ARIA roles, never by their words.
"""
from __future__ import annotations

import re
import secrets

import orjson
import pytest
from support import axe, chromium
from support.payment_data import KINDS, PISP, initiation_of, payment_file, vrp_control
from support.tpp import ACCOUNTS, CUSTOMER_PRESENT, Tpp

from gateway.payments.jws import sign_detached

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CALLBACK = "https://tpp.example.com/callback"
LANGUAGES = {"en": "en-GB,en", "zh-CN": "zh-CN,zh;q=0.9"}  # the customer's language → the browser's preference
CJK = re.compile(r"[\u4e00-\u9fff]")
# accounts, the payment kinds of support.payment_data, file payments, VRP, confirmation of funds
CONSENT_KINDS = ["accounts", *sorted(KINDS), "file", "vrp", "funds"]


@pytest.fixture(scope="module")
def browsers(tmp_path_factory, pki):
    """One Chromium per language for the module, axe-core injected into every page; started when first asked for."""
    chromium.need(chromium.missing(), axe.missing())
    started: dict = {}

    def browser(language: str):
        if language not in started:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("SE_OFFLINE", "true")  # Selenium Manager never downloads anything
                driver = chromium.customer_browser(tmp_path_factory.mktemp(f"chromium-{language}"), pki,
                                                   LANGUAGES[language])
            started[language] = driver
            axe.inject_into_every_page(driver)
        driver = started[language]
        chromium.forget_sessions(driver)
        driver.get_log("browser")  # drop what the previous journey's last page (the unreachable TPP) logged
        return driver

    try:
        yield browser
    finally:
        for driver in started.values():
            driver.quit()


class Pages:
    """What is wrong with the pages of one journey, each checked as shown at each of `widths`; asserted at its end so
    one failing journey lists every problem on every page."""

    def __init__(self, driver, language: str, widths: tuple[int, ...]) -> None:
        self.driver, self.language, self.widths = driver, language, widths
        self.problems: list[str] = []

    def check(self, step: str) -> None:
        """The page now shown, at each width in turn (the journey goes on at the last)."""
        driver = self.driver
        where = f"{step} page ({driver.current_url.split('?')[0]}, {self.language})"
        lang = chromium.html_lang(driver)
        if not lang.lower().startswith(self.language.split("-")[0]):
            self.problems.append(f"{where}: <html lang={lang!r}>, not {self.language}")
        if self.language.startswith("zh") and not CJK.search(driver.find_element("tag name", "body").text):
            self.problems.append(f"{where}: no Chinese text")
        for width in self.widths:
            chromium.set_width(driver, width)
            found = axe.violations(driver)
            if found:
                self.problems.append(f"{where} at {width} px: axe-core\n{axe.report(found)}")
            if width == chromium.PHONE and chromium.overflows(driver, width):
                self.problems.append(f"{where} at {width} px: wider than the screen (scrolls sideways)")
        foreign = chromium.foreign_resources(driver)
        if foreign:
            self.problems.append(f"{where}: loads from other hosts {foreign}")
        errors = chromium.console_errors(driver)
        if errors:
            self.problems.append(f"{where}: browser console errors {[e['message'] for e in errors]}")

    def assert_clean(self) -> None:
        if self.problems:
            pytest.fail("\n".join(self.problems), pytrace=False)


# ---------------------------------------------------------------- consents of each kind, made by the TPP


def _post_signed(tpp: Tpp, path: str, body: bytes, token: str) -> dict:
    """A signed payment-API POST (x-jws-signature, x-idempotency-key) answered 201 or 200: its JSON, if any."""
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json", **CUSTOMER_PRESENT,
               "x-idempotency-key": secrets.token_hex(8),
               "x-jws-signature": sign_detached(body, tpp.jwk, tpp.client_id)}
    answer = tpp.http.post(tpp.base + path, content=body, headers=headers)
    assert answer.status_code in (200, 201), answer.text
    return answer.json() if answer.content else {}


@pytest.fixture(scope="module")
def current_account(module_tpp) -> dict:
    """alice's current account's scheme and number, which a confirmation-of-funds consent names."""
    token = module_tpp.consent_token(["ReadAccountsDetail"], accounts=["acc-alice-current"])
    [account] = module_tpp.get(f"{ACCOUNTS}/acc-alice-current", token).json()["Data"]["Account"]
    return next(i for i in account["Account"] if i["SchemeName"] == "UK.OBIE.SortCodeAccountNumber")


def _consent(tpp: Tpp, kind: str, current_account: dict) -> tuple[str, str]:
    """A new consent of `kind`, ready for the customer: (its id, the scope to push it with)."""
    if kind == "accounts":
        return tpp.create_consent(["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail",
                                   "ReadTransactionsCredits", "ReadTransactionsDebits"])["ConsentId"], \
            "accounts"
    if kind == "funds":
        return tpp.funds_consent(current_account)["ConsentId"], "fundsconfirmations"
    cc = tpp.client_credentials("payments")["access_token"]
    if kind == "vrp":
        body = {"Data": {"ControlParameters": vrp_control(), "Initiation": {
            "CreditorAccount": {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "77100112345678",
                                "Name": "Alice Smith (savings)"}, "RemittanceInformation": {"Reference": "SWEEP"}}},
                "Risk": {}}
        return _post_signed(tpp, f"{PISP}/domestic-vrp-consents", orjson.dumps(body), cc)["Data"]["ConsentId"], \
            "payments"
    if kind == "file":
        content = payment_file("10.00", "20.00", "30.00")
        consents = f"{PISP}/file-payment-consents"
        made = _post_signed(tpp, consents, orjson.dumps({"Data": {"Initiation": initiation_of(content)}}), cc)
        consent_id = made["Data"]["ConsentId"]
        _post_signed(tpp, f"{consents}/{consent_id}/file", content, cc)  # a file consent is authorised once uploaded
        return consent_id, "payments"
    consents, _, _, _, extra, initiation = KINDS[kind]
    body = orjson.dumps({"Data": {**extra, "Initiation": initiation()}, "Risk": {}})
    return _post_signed(tpp, f"{PISP}/{consents}", body, cc)["Data"]["ConsentId"], "payments"


# ---------------------------------------------------------------- the journeys


@pytest.mark.parametrize("language", sorted(LANGUAGES))
@pytest.mark.parametrize("decision", ["approve", "deny"])
@pytest.mark.parametrize("kind", CONSENT_KINDS)
def test_a_customer_logs_in_and_decides_on_each_kind_of_consent(gateway, module_tpp, pki, browsers,
                                                                current_account, kind, decision, language):
    consent_id, scope = _consent(module_tpp, kind, current_account)
    url, pushed = chromium.authorization_url(module_tpp, consent_id, scope)
    driver = browsers(language)
    # An approval is clicked through at a phone's width, a refusal at a desktop's; every page is checked at both.
    widths = (chromium.DESKTOP, chromium.PHONE) if decision == "approve" else (chromium.PHONE, chromium.DESKTOP)
    pages = Pages(driver, language, widths)
    driver.get(url)
    chromium.log_in_to_consent(driver, pki, pages.check)
    assert module_tpp.client_id in driver.find_element("tag name", "body").text  # who is asking

    if decision == "approve":
        chromium.choose_an_account(driver)
    chromium.decide(driver, decision)
    params = chromium.redirected_to(driver, CALLBACK)
    assert params["state"] == pushed.state and params["iss"] == module_tpp.issuer, params
    if decision == "approve":
        assert set(params) == {"code", "state", "iss"}, params
        assert module_tpp.exchange(params["code"], pushed.code_verifier)["access_token"]
    else:
        assert params["error"] == "access_denied", params
    pages.assert_clean()


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_a_customer_withdraws_a_consent_on_the_dashboard(gateway, module_tpp, pki, browsers, language):
    token = module_tpp.consent_token(["ReadAccountsBasic", "ReadBalances"], accounts=["acc-alice-current"])
    assert module_tpp.get(ACCOUNTS, token).status_code == 200  # an access the dashboard lists
    consent_id, form = token["consent_id"], chromium.revoke_form(token["consent_id"])
    driver = browsers(language)
    pages = Pages(driver, language, (chromium.DESKTOP, chromium.PHONE))
    chromium.log_in_to_dashboard(driver, gateway.base, pki, then=form, on_page=pages.check)
    assert consent_id in driver.page_source and "/open-banking/v3.1/aisp/accounts" in driver.page_source

    opener = chromium.disclosure_of(driver, form)
    if opener is not None:  # the confirmation step: its question is a page state of its own
        opener.click()
        chromium.wait(driver, lambda d: chromium.submit_button(d, form).is_displayed(), "the confirmation did not open")
        pages.check("dashboard withdrawal confirmation")
    chromium.submit_button(driver, form).click()
    chromium.wait(driver, lambda d: not chromium.shows(d, form), f"{consent_id} can still be withdrawn")
    pages.check("dashboard after the withdrawal")
    assert module_tpp.get(ACCOUNTS, token).status_code == 403
    pages.assert_clean()


def test_the_page_switches_language_and_keeps_it_for_the_rest_of_the_journey(gateway, module_tpp, pki, browsers):
    consent_id = module_tpp.create_consent(["ReadAccountsBasic"])["ConsentId"]
    url, _ = chromium.authorization_url(module_tpp, consent_id, "accounts")
    driver = browsers("en")
    driver.get(url)
    chromium.wait_for(driver, chromium.LOGIN_FORM, "login form")
    assert chromium.html_lang(driver).startswith("en")
    switch = "a[hreflang^='zh'], a[href*='lang=zh'], button[name=lang][value^='zh']"
    assert chromium.shows(driver, switch), f"no switch to Chinese ({switch}) on the login page"
    driver.find_element("css selector", switch).click()
    chromium.wait(driver, lambda d: chromium.html_lang(d).startswith("zh"), "the switch did not show Chinese")
    pages = Pages(driver, "zh-CN", (chromium.DESKTOP,))
    chromium.log_in_to_consent(driver, pki, pages.check)  # the code and consent pages stay in Chinese
    pages.assert_clean()


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_a_journey_that_cannot_go_on_ends_on_a_page_that_says_so(gateway, module_tpp, browsers, language):
    driver = browsers(language)
    pages = Pages(driver, language, (chromium.PHONE, chromium.DESKTOP))
    driver.get(f"{gateway.base}/oauth2/authorize?client_id={module_tpp.client_id}"
               "&request_uri=urn:ietf:params:oauth:request_uri:unknown")
    chromium.wait_for(driver, "[role=alert]", "error announced on the page")
    assert not chromium.shows(driver, chromium.LOGIN_FORM)  # no login for a request that is not there
    logged = [entry["message"] for entry in chromium.console_errors(driver)]
    assert all("status of 400" in message for message in logged), logged  # the page's own status, nothing else
    pages.check("error")
    pages.assert_clean()
