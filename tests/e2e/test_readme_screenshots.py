"""The README's screenshots (docs/screenshots/*.png), made by the browser tests' Chromium from the pages as served, so
they show what customers and the security team see today: the consent page, the payment confirmation, the
dashboard (desktop), the consent page on a phone in Chinese, and the admin listener's overview.

A gateway of this module's own, so the dashboard and the overview show this module's few consents and calls.
"""
from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from support import chromium
from support.processes import ROOT
from support.tpp import ACCOUNTS, domestic_initiation

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CALLBACK = "https://tpp.example.com/callback"
SCREENSHOTS = ROOT / "docs" / "screenshots"
ADMIN_PASSWORD = "screenshot-admin"  # `obgw admin password` wants at least 12 characters
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def chromium_for(tmp_path, pki, monkeypatch):
    """Chromium for a language preference (`chromium_for("zh-CN,zh")`), each quit at the end of the test."""
    chromium.need(chromium.missing(), chromium.missing_chinese_font())
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never downloads anything
    started = []

    def start(languages: str):
        started.append(chromium.customer_browser(tmp_path / f"chromium-{len(started)}", pki, languages))
        return started[-1]

    try:
        yield start
    finally:
        for driver in started:
            driver.quit()


def _consent_page(driver, tpp, consent_id: str, scope: str) -> None:
    driver.get(chromium.authorization_url(tpp, consent_id, scope)[0])
    chromium.log_in_to_consent(driver, tpp.pki)


def _agree(driver) -> None:
    chromium.choose_an_account(driver)
    chromium.decide(driver, "approve")
    chromium.redirected_to(driver, CALLBACK)


def _shot(driver, name: str) -> None:
    chromium.screenshot(driver, SCREENSHOTS / f"{name}.png")
    assert (SCREENSHOTS / f"{name}.png").read_bytes().startswith(PNG)


def test_the_readme_screenshots_are_made_from_the_pages_as_served(gateway, module_tpp, chromium_for):
    phone = chromium_for("zh-CN,zh")
    chromium.set_width(phone, chromium.PHONE)
    _consent_page(phone, module_tpp, module_tpp.create_consent(["ReadAccountsBasic"])["ConsentId"], "accounts")
    _shot(phone, "consent-phone-zh")

    driver = chromium_for("en-GB,en")
    chromium.set_width(driver, chromium.DESKTOP)
    permissions = ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail", "ReadTransactionsCredits",
                   "ReadTransactionsDebits"]
    consent_id = module_tpp.create_consent(permissions)["ConsentId"]
    _consent_page(driver, module_tpp, consent_id, "accounts")
    _shot(driver, "consent")
    _agree(driver)
    made = module_tpp.payment_consent(domestic_initiation())
    assert made.status_code == 201, made.text
    _consent_page(driver, module_tpp, made.json()["Data"]["ConsentId"], "payments")
    _shot(driver, "payment-confirmation")
    _agree(driver)

    token = module_tpp.consent_token(["ReadAccountsBasic", "ReadBalances"], accounts=["acc-alice-current"])
    assert module_tpp.get(ACCOUNTS, token).status_code == 200  # an access for the dashboard to show
    chromium.log_in_to_dashboard(driver, gateway.base, module_tpp.pki, then=chromium.revoke_form(consent_id))
    _shot(driver, "dashboard")

    done = subprocess.run([sys.executable, "-m", "gateway", "admin", "password"], env=gateway.env,
                          input=ADMIN_PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    credentials = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {credentials}"}})
    driver.get(f"http://127.0.0.1:{gateway.admin_port}/admin")
    chromium.wait_for(driver, "svg[role=img]", "admin overview with its charts")
    _shot(driver, "admin-overview")
