"""Headless Chromium for browser tests: Debian's chromium driven by Selenium through Debian's chromedriver.

Nothing is downloaded: the driver is /usr/bin/chromedriver (`make browser` installs it), so Selenium Manager is not
asked for one, and the caller sets SE_OFFLINE=true so that it could not fetch a driver or a browser if it were.
The browser trusts exactly the certificates whose public keys are pinned (`--ignore-certificate-errors-spki-list`),
never every certificate.
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = ("Chromium and its driver are missing: install the Debian packages chromium and chromium-driver "
           "(as root: apt-get install -y --no-install-recommends chromium chromium-driver; `make test` does it)")
WAIT_SECONDS = 15  # every wait on the browser is bounded by this


def installed() -> bool:
    return all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER))


def spki_sha256(pem: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo DER)) of the first certificate in `pem`: Chromium's pin format."""
    certificate = x509.load_pem_x509_certificates(pem.read_bytes())[0]
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def start(profile: Path, pins: list[str], host_rules: str = ""):
    """A headless Chromium with a fresh profile under `profile`; the caller must `quit()` it.

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
                 "--no-first-run", "--disable-quic", f"--user-data-dir={profile / 'user-data'}",
                 # Honoured only together with --user-data-dir (Chromium ignores the pin list without one).
                 f"--ignore-certificate-errors-spki-list={','.join(pins)}"):
        options.add_argument(flag)
    if host_rules:
        # No proxy either (one from the environment would otherwise see the mapped names).
        options.add_argument(f"--host-resolver-rules={host_rules}")
        options.add_argument("--no-proxy-server")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    env = dict(os.environ, HOME=str(profile))
    service = Service(str(CHROMEDRIVER), env=env, log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    driver.implicitly_wait(0)
    return driver
