"""Headless Chromium for browser tests: Debian's chromium driven by Selenium through Debian's chromedriver, and the
customer's steps through the pages (log in with both factors, decide, withdraw), finding elements by the contract's
field names and form actions (CONTRACT §4, §6), never by their words, which come in two languages.

Nothing is downloaded: the driver is /usr/bin/chromedriver (`make browser` installs it), so Selenium Manager is not
asked for one, and the caller sets SE_OFFLINE=true so that it could not fetch a driver or a browser if it were.
The browser trusts exactly the certificates whose public keys are pinned (`--ignore-certificate-errors-spki-list`),
never every certificate.

Widths are DevTools device metrics, as a phone's viewport (`mobile`: the page's viewport meta tag applies) or a
desktop window's, kept across navigations until the next `set_width`.
"""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from support.authenticator import one_time_code

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = ("Chromium and its driver are missing: install the Debian packages chromium and chromium-driver "
           "(as root: apt-get install -y --no-install-recommends chromium chromium-driver; `make test` does it)")
NO_CHINESE_FONT = ("No font has Chinese glyphs, so Chinese pages show empty boxes: install the Debian package "
                   "fonts-wqy-microhei (as root: apt-get install -y --no-install-recommends fonts-wqy-microhei; "
                   "`make test` does it)")
WAIT_SECONDS = 15  # every wait on the browser is bounded by this
PHONE, DESKTOP = 360, 1280  # CSS pixels wide
_HEIGHTS = {PHONE: 740, DESKTOP: 800}


def missing() -> str | None:
    """What to install when Chromium or its driver is missing, else None."""
    return None if all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER)) else MISSING


def missing_chinese_font() -> str | None:
    """What to install when fontconfig knows no font for Chinese (Chromium would draw boxes), else None."""
    try:
        found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        found = ""
    return None if found.strip() else NO_CHINESE_FONT


def need(*messages: str | None) -> None:
    """Skip the calling test when a tool it needs is missing (`messages`: what to install, or None when present);
    on CI (CI=true), where `make test` installs them all, fail instead, so a broken install step cannot pass."""
    said = [message for message in messages if message]
    if said:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("; ".join(said))


def spki_sha256(pem: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo DER)) of the first certificate in `pem`: Chromium's pin format."""
    certificate = x509.load_pem_x509_certificates(pem.read_bytes())[0]
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def start(profile: Path, pins: list[str], host_rules: str = "", languages: str = "en-GB,en"):
    """A headless Chromium with a fresh profile under `profile`; the caller must `quit()` it.

    `languages` is the customer's language preference, sent as `Accept-Language` (the `intl.accept_languages`
    preference; `--lang` sets only the browser's own interface language on Linux).
    HOME is pointed into `profile` too, so Chromium's NSS database (~/.pki/nssdb, where client certificates would
    be looked up) is a fresh empty one: a certificate request from the server never finds a certificate to offer.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--hide-scrollbars", f"--user-data-dir={profile / 'user-data'}",
                 # Honoured only together with --user-data-dir (Chromium ignores the pin list without one).
                 f"--ignore-certificate-errors-spki-list={','.join(pins)}"):
        options.add_argument(flag)
    if host_rules:
        # No proxy either (one from the environment would otherwise see the mapped names).
        options.add_argument(f"--host-resolver-rules={host_rules}")
        options.add_argument("--no-proxy-server")
    options.add_experimental_option("prefs", {"intl.accept_languages": languages})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    env = dict(os.environ, HOME=str(profile))
    service = Service(str(CHROMEDRIVER), env=env, log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    driver.implicitly_wait(0)
    return driver


def customer_browser(profile: Path, pki: Path, languages: str = "en-GB,en"):
    """`start` for the customer pages: the gateway's dev certificate pinned, the demo TPPs' redirect host on loopback
    (nothing listens there, so the browser stops on an error page whose URL holds what the TPP would receive)."""
    return start(profile, pins=[spki_sha256(pki / "server.pem")], host_rules="MAP tpp.example.com 127.0.0.1",
                 languages=languages)


# ---------------------------------------------------------------- the page as shown


def set_width(driver, width: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": _HEIGHTS.get(width, 800), "deviceScaleFactor": 1, "mobile": width < 600})


def overflows(driver, width: int) -> bool:
    """Whether the page is wider than a screen `width` wide (WCAG 1.4.10 Reflow: no scrolling in two directions).
    Measured against the width set, not `innerWidth`: a phone zooms out to fit a page too wide for it."""
    return driver.execute_script("return document.documentElement.scrollWidth > arguments[0]", width)


def foreign_resources(driver) -> list[str]:
    """What the page loaded from any other origin than its own (CONTRACT §6: none)."""
    return driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"
                                 ".filter(url => new URL(url).origin !== location.origin)")


def html_lang(driver) -> str:
    return driver.execute_script("return document.documentElement.lang")


def console_errors(driver) -> list[dict]:
    """The browser's SEVERE console entries since the last call (JavaScript errors, CSP refusals, failed loads)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver, path: Path) -> None:
    """A PNG of the whole page at the current width, below the fold too."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def forget_sessions(driver) -> None:
    """Every cookie of every site dropped: the next journey starts as a new visitor."""
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


def wait(driver, condition, message: str):
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # Elements found while a page is being replaced may vanish or go stale: look again until the deadline. Chromium
    # sometimes says so only as a generic inspector error ("Node with given id does not belong to the document").
    ignored = (NoSuchElementException, StaleElementReferenceException, WebDriverException)
    return WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=ignored).until(condition, message)


def shows(driver, selector: str) -> bool:
    return bool(driver.find_elements("css selector", selector))


def wait_for(driver, selector: str, what: str):
    """The first element matching `selector` once the page has one."""
    wait(driver, lambda d: shows(d, selector), f"no {what} at {driver.current_url}")
    return driver.find_element("css selector", selector)


def redirected_to(driver, url: str) -> dict[str, str]:
    """The query parameters the browser was sent to `url` with (the TPP's redirect URI)."""
    wait(driver, lambda d: d.current_url.startswith(url), f"the browser was not sent to {url}: {driver.current_url}")
    return {k: v[0] for k, v in parse_qs(urlsplit(driver.current_url).query).items()}


# ---------------------------------------------------------------- the customer's steps (CONTRACT §4, §6 field names)

LOGIN_FORM = "form:has(input[name=password])"
CODE_FORM = "form:has(input[name=otp])"
# A form's own submit button: not one with a name, which says something else (the code form's `decision=deny`).
SUBMIT = "button:not([type]):not([name]), button[type=submit]:not([name]), input[type=submit]:not([name])"
CONSENT_FORM = "form:has(button[name=decision][value=approve])"


def submit_of(form: str) -> str:
    """The selector of the submit button of the form matching `form`."""
    return ", ".join(f"{form} {button}" for button in SUBMIT.split(", "))


def submit_button(driver, form: str):
    return driver.find_element("css selector", submit_of(form))


def enter_password(driver, customer: str) -> None:
    wait_for(driver, f"{LOGIN_FORM} input[name=username]", "login form").send_keys(customer)
    driver.find_element("css selector", f"{LOGIN_FORM} input[name=password]").send_keys(f"{customer}-pass")
    submit_button(driver, LOGIN_FORM).click()


def enter_code(driver, pki: Path, customer: str) -> None:
    wait_for(driver, f"{CODE_FORM} input[name=otp]", "one-time code form").send_keys(one_time_code(pki, customer))
    submit_button(driver, CODE_FORM).click()


def asks_for_code_or(driver, selector: str) -> bool:
    """After the password: True when the second-factor form shows, False when `selector` does (no second factor)."""
    wait(driver, lambda d: shows(d, CODE_FORM) or shows(d, selector),
         f"neither the one-time code form nor {selector} at {driver.current_url}")
    return shows(driver, CODE_FORM)


def _nothing(step: str) -> None:
    pass


def authorization_url(tpp, consent_id: str, scope: str):
    """The TPP pushes its authorization request (PAR) for `consent_id`: (the URL it sends the customer to, what it
    pushed)."""
    response, pushed = tpp.push(consent_id, scope=f"openid {scope}")
    assert response.status_code == 201, response.text
    return f"{tpp.base}/oauth2/authorize?" + urlencode({"client_id": tpp.client_id,
                                                        "request_uri": pushed.request_uri}), pushed


def log_in_to_consent(driver, pki: Path, on_page: Callable[[str], None] = _nothing, customer: str = "alice") -> None:
    """From the login page shown: the password, the one-time code, until the consent page shows; `on_page` is
    called with the name of each page as it shows."""
    wait_for(driver, LOGIN_FORM, "login form")
    on_page("login")
    enter_password(driver, customer)
    assert asks_for_code_or(driver, CONSENT_FORM), "the consent page showed without a second factor"
    on_page("one-time code")
    enter_code(driver, pki, customer)
    wait_for(driver, CONSENT_FORM, "consent page")
    on_page("consent")


def log_in_to_dashboard(driver, base: str, pki: Path, then: str, on_page: Callable[[str], None] = _nothing,
                        customer: str = "alice") -> None:
    """The dashboard's login page, the password and the one-time code if asked, until `then` shows."""
    driver.get(f"{base}/login")
    wait_for(driver, LOGIN_FORM, "login form")
    on_page("dashboard login")
    enter_password(driver, customer)
    if asks_for_code_or(driver, then):
        on_page("dashboard one-time code")
        enter_code(driver, pki, customer)
    wait_for(driver, then, "dashboard")
    on_page("dashboard")


def choose_an_account(driver) -> None:
    """Tick the first account offered unless one is chosen already (a funds check names its own account)."""
    boxes = driver.find_elements("css selector", f"{CONSENT_FORM} input[name=account_ids]")
    assert boxes, f"no account_ids on the consent page {driver.current_url}"
    if not any(box.is_selected() for box in boxes if box.get_attribute("type") in ("checkbox", "radio")):
        boxes[0].click()


def decide(driver, decision: str) -> None:
    driver.find_element("css selector", f"{CONSENT_FORM} button[name=decision][value={decision}]").click()


def revoke_form(consent_id: str) -> str:
    """The dashboard's withdrawal form of one consent (CONTRACT §6: it stays in the /consents page's HTML)."""
    return f"form[action='/consents/{consent_id}/revoke']"


def disclosure_of(driver, form: str):
    """The control that shows a hidden withdrawal `form` (the confirmation step wrapping it): the summary of its
    `<details>`, a link to an element around it, or a button whose aria-controls names one; None when none does."""
    return driver.execute_script("""
        const form = document.querySelector(arguments[0]);
        const details = form.closest("details");
        if (details && !details.open) return details.querySelector(":scope > summary");
        for (let box = form; box; box = box.parentElement) {
          if (!box.id) continue;
          const opener = document.querySelector(`a[href="#${box.id}"], [aria-controls~="${box.id}"]`);
          if (opener) return opener;
        }
        return null;""", form)
