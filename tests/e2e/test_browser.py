"""The consent page and the dashboard driven in a real headless Chromium: approve with one account, then revoke.

The TPP is the Authlib-based `Tpp` helper; only the customer's part runs in the browser, through the real pages.

How the browser is kept on this machine and trusts only the gateway (support.chromium.customer_browser):
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

import pytest
from support import chromium
from support.tpp import ACCOUNTS

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CALLBACK = "https://tpp.example.com/callback"


@pytest.fixture
def browser(tmp_path, pki, monkeypatch):
    chromium.need(chromium.missing())
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never downloads anything
    driver = chromium.customer_browser(tmp_path / "chromium", pki)
    try:
        yield driver
    finally:
        driver.quit()


def test_a_customer_approves_one_account_in_the_browser_then_withdraws_the_consent(gateway, tpp, browser):
    consent_id = tpp.create_consent(["ReadAccountsBasic", "ReadBalances"])["ConsentId"]
    url, pushed = chromium.authorization_url(tpp, consent_id, "accounts")

    # The authorization endpoint: log in (password, then the authenticator's code), then the consent page.
    browser.get(url)
    chromium.log_in_to_consent(browser, tpp.pki)
    assert "tpp-demo" in browser.find_element("tag name", "body").text  # who is asking
    boxes = {box.get_attribute("value"): box
             for box in browser.find_elements("css selector", f"{chromium.CONSENT_FORM} input[name=account_ids]")}
    assert set(boxes) == {"acc-alice-current", "acc-alice-savings", "acc-alice-card"}
    boxes["acc-alice-current"].click()
    assert [value for value, box in boxes.items() if box.is_selected()] == ["acc-alice-current"]
    assert chromium.console_errors(browser) == []  # the login and consent pages rendered cleanly
    chromium.decide(browser, "approve")

    # The redirect to the TPP: nothing answers there, but the URL is what the TPP would receive.
    params = chromium.redirected_to(browser, CALLBACK)
    assert set(params) == {"code", "state", "iss"}, browser.current_url
    assert params["state"] == pushed.state and params["iss"] == tpp.issuer

    token = tpp.exchange(params["code"], pushed.code_verifier)
    accounts = tpp.get(ACCOUNTS, token)
    assert accounts.status_code == 200, accounts.text
    assert [a["AccountId"] for a in accounts.json()["Data"]["Account"]] == ["acc-alice-current"]
    browser.get_log("browser")  # drop what the unreachable TPP page logged

    # The dashboard, in the same browser: the consent is listed with its access, and withdrawn by its form.
    form = chromium.revoke_form(consent_id)
    chromium.log_in_to_dashboard(browser, tpp.base, tpp.pki, then=form)
    assert "GET /open-banking/v3.1/aisp/accounts" in browser.find_element("tag name", "body").text
    assert chromium.console_errors(browser) == []  # the dashboard's login page and the consents page rendered cleanly
    opener = chromium.disclosure_of(browser, form)
    if opener is not None:  # a confirmation step wraps the form
        opener.click()
    chromium.submit_button(browser, form).click()
    chromium.wait(browser, lambda d: not chromium.shows(d, form), "the consent can still be withdrawn")
    assert chromium.console_errors(browser) == []

    refused = tpp.get(ACCOUNTS, token)
    assert refused.status_code == 403, refused.text
