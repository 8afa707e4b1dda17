"""The consent page and the dashboard driven in a real headless Chromium: approve with one account, then revoke.

The TPP is the Authlib-based `Tpp` helper; only the customer's part runs in the browser, through the real pages.

How the browser is kept on this machine and trusts only the gateway:
- `--host-resolver-rules=MAP tpp.example.com 127.0.0.1` (and no proxy): the approve redirect to the TPP's redirect URI
  https://tpp.example.com/callback resolves to loopback, where nothing listens on 443, so the browser stops on an
  error page whose URL still holds `code`, `state` and `iss`, and nothing leaves the machine.
- `--ignore-certificate-errors-spki-list=<base64 SHA-256 of the server certificate's SubjectPublicKeyInfo>` pins the
  gateway's dev certificate and nothing else (no blanket --ignore-certificate-errors). Chromium honours this list only
  when --user-data-dir is given too (its MaybeWrapCertVerifier), which the fresh profile per test provides. Checked
  headless (--headless=new) with Debian's chromium 156: with the right pin the gateway's pages load, with any other
  pin the same URL shows "Your connection is not private".
- The browser log is read at each step: a CSP refusal (e.g. of the form's redirect or of a style without its nonce)
  or a JavaScript error shows there as a SEVERE entry, so an empty log means the pages rendered as served.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from support import chromium
from support.authenticator import one_time_code
from support.tpp import ACCOUNTS

pytestmark = [pytest.mark.e2e, pytest.mark.browser,
              pytest.mark.skipif(not chromium.installed(), reason=chromium.MISSING)]

CALLBACK = "https://tpp.example.com/callback"


@pytest.fixture
def browser(tmp_path, pki, monkeypatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never downloads anything
    driver = chromium.start(tmp_path / "chromium", pins=[chromium.spki_sha256(pki / "server.pem")],
                            host_rules="MAP tpp.example.com 127.0.0.1")
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, message: str):
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # Elements found while a page is being replaced may vanish or go stale: look again until the deadline. Chromium
    # sometimes says so only as a generic inspector error ("Node with given id does not belong to the document").
    ignored = (NoSuchElementException, StaleElementReferenceException, WebDriverException)
    return WebDriverWait(driver, chromium.WAIT_SECONDS, ignored_exceptions=ignored).until(condition, message)


def _console_errors(driver) -> list[dict]:
    """The browser's SEVERE console entries since the last call (JavaScript errors, CSP refusals, failed loads)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _log_in(driver, customer: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: d.find_elements(By.NAME, "username"), f"no login form at {driver.current_url}")
    driver.find_element(By.NAME, "username").send_keys(customer)
    driver.find_element(By.NAME, "password").send_keys(f"{customer}-pass")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def _enter_code(driver, pki, customer: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: d.find_elements(By.NAME, "otp"), f"no one-time code form at {driver.current_url}")
    driver.find_element(By.NAME, "otp").send_keys(one_time_code(pki, customer))
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]:not([name])").click()


def test_a_customer_approves_one_account_in_the_browser_then_withdraws_the_consent(gateway, tpp, browser):
    from selenium.webdriver.common.by import By

    consent = tpp.create_consent(["ReadAccountsBasic", "ReadBalances"])
    consent_id = consent["ConsentId"]
    pushed_response, pushed = tpp.push(consent_id)
    assert pushed_response.status_code == 201, pushed_response.text

    # The authorization endpoint: log in (password, then the authenticator's code), then the consent page.
    browser.get(f"{gateway.base}/oauth2/authorize?"
                + urlencode({"client_id": tpp.client_id, "request_uri": pushed.request_uri}))
    _log_in(browser, "alice")
    _enter_code(browser, tpp.pki, "alice")
    _wait(browser, lambda d: d.find_elements(By.NAME, "account_ids"), "no consent page after logging in")
    assert browser.find_element(By.CSS_SELECTOR, ".tpp").text == "tpp-demo"
    will_see = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "ul:not(.fine) > li")]
    assert will_see == ["the names, types and currencies of the accounts you choose",
                        "the balances of those accounts"], will_see
    boxes = {box.get_attribute("value"): box for box in browser.find_elements(By.NAME, "account_ids")}
    assert set(boxes) == {"acc-alice-current", "acc-alice-savings", "acc-alice-card"}
    boxes["acc-alice-current"].click()
    assert [value for value, box in boxes.items() if box.is_selected()] == ["acc-alice-current"]
    assert _console_errors(browser) == []  # the login and consent pages rendered cleanly
    browser.find_element(By.CSS_SELECTOR, "button[name=decision][value=approve]").click()

    # The redirect to the TPP: nothing answers there, but the URL is what the TPP would receive.
    _wait(browser, lambda d: d.current_url.startswith(CALLBACK), "the browser was not sent to the redirect URI")
    params = {k: v[0] for k, v in parse_qs(urlsplit(browser.current_url).query).items()}
    assert set(params) == {"code", "state", "iss"}, browser.current_url
    assert params["state"] == pushed.state and params["iss"] == tpp.issuer

    token = tpp.exchange(params["code"], pushed.code_verifier)
    accounts = tpp.get(ACCOUNTS, token)
    assert accounts.status_code == 200, accounts.text
    assert [a["AccountId"] for a in accounts.json()["Data"]["Account"]] == ["acc-alice-current"]
    browser.get_log("browser")  # drop what the unreachable TPP page logged

    # The dashboard, in the same browser: the consent is listed with its access, and withdrawn by its button.
    browser.get(f"{gateway.base}/login")
    _log_in(browser, "alice")
    _wait(browser, lambda d: urlsplit(d.current_url).path == "/consents" and d.find_elements(By.ID, consent_id),
          f"consent {consent_id} not on the dashboard")
    section = browser.find_element(By.ID, consent_id)
    assert "tpp-demo" in section.text and "(Authorised)" in section.text, section.text
    assert "the balances of those accounts" in section.text
    assert "GET /open-banking/v3.1/aisp/accounts" in section.text
    assert _console_errors(browser) == []  # the dashboard's login page and the consents page rendered cleanly
    section.find_element(By.XPATH, ".//button[normalize-space()='Withdraw this consent']").click()
    _wait(browser, lambda d: "(Revoked)" in d.find_element(By.ID, consent_id).text,
          "the dashboard does not show the consent as Revoked")
    assert not browser.find_element(By.ID, consent_id).find_elements(By.TAG_NAME, "button")
    assert _console_errors(browser) == []

    refused = tpp.get(ACCOUNTS, token)
    assert refused.status_code == 403, refused.text
