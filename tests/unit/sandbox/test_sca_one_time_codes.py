"""The bank's second factor (RFC 6238 TOTP): the RFC's own test vectors, the ±1 step window, a code accepted once
only, the `/internal/otp` endpoint, and the published demo secrets (certs/dev/customers.json) being the bank's."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path

import pytest
from support.authenticator import totp as tpp_totp

from gateway import pki
from gateway.sandbox.app import create_accounts_app
from gateway.sandbox.auth import STEP_SECONDS, OneTimeCodes, totp
from gateway.sandbox.data import Bank
from gateway.sandbox.profiles import PROFILES

RFC_SECRET = b"12345678901234567890"  # RFC 6238 Appendix B, SHA-1
# (time, the RFC's 8-digit code): a 6-digit code is its last six digits (the same number modulo 10^6).
RFC_VECTORS = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"), (1234567890, "89005924"),
               (2000000000, "69279037"), (20000000000, "65353130")]
NOW = 1_800_000_000.0  # a fixed clock for the window tests
ALICE_SECRET = next(p.totp_secret for p in PROFILES if p.customer.customer_id == "alice")


@pytest.mark.parametrize(("at", "code"), RFC_VECTORS)
def test_the_code_is_rfc_6238s_for_its_step(at: int, code: str) -> None:
    step = at // STEP_SECONDS
    assert totp(RFC_SECRET, step) == code[-6:]
    # The tests' authenticator (support.tpp) is a separate implementation: it agrees with the RFC too.
    assert tpp_totp(base64.b32encode(RFC_SECRET).decode(), step) == code[-6:]


def _codes(window: int = 1, now: float = NOW) -> OneTimeCodes:
    return OneTimeCodes({"alice": ALICE_SECRET}, window, now=lambda: now)


def _code(steps_from_now: int, now: float = NOW) -> str:
    return totp(base64.b32decode(ALICE_SECRET), int(now) // STEP_SECONDS + steps_from_now)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_the_current_step_and_one_either_side_are_accepted(offset: int) -> None:
    assert _codes().check("alice", _code(offset))


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_a_code_further_away_is_refused_unless_the_window_is_wider(offset: int) -> None:
    assert not _codes().check("alice", _code(offset))
    assert _codes(window=3).check("alice", _code(offset))


def test_a_code_is_accepted_once_only_and_its_neighbours_stay_usable() -> None:
    codes = _codes()
    assert codes.check("alice", _code(0))
    assert not codes.check("alice", _code(0))  # replayed: refused, however soon
    assert codes.check("alice", _code(1)) and codes.check("alice", _code(-1))
    assert not codes.check("alice", _code(1)) and not codes.check("alice", _code(-1))


def test_a_used_code_stays_refused_while_its_step_is_in_the_window() -> None:
    clock = [NOW]
    codes = OneTimeCodes({"alice": ALICE_SECRET}, 1, now=lambda: clock[0])
    used = _code(1)
    assert codes.check("alice", used)
    clock[0] = NOW + STEP_SECONDS  # its step is now the current one
    assert not codes.check("alice", used)
    clock[0] = NOW + 2 * STEP_SECONDS  # ... and now the one before
    assert not codes.check("alice", used)


@pytest.mark.parametrize("code", ["", "12345", "1234567", " 12345", "12345a", "١٢٣٤٥٦", "123 456"])
def test_anything_but_six_ascii_digits_is_refused(code: str) -> None:
    assert not _codes().check("alice", code)


def test_a_customer_without_an_authenticator_is_refused() -> None:
    assert not _codes().check("mallory", _code(0))
    assert not _codes().check("bob", _code(0))  # alice's code is not bob's


def test_the_endpoint_says_200_once_then_401_and_400_for_a_malformed_body(fresh_bank: Bank, client_for) -> None:
    client = client_for(create_accounts_app(fresh_bank))
    code = totp(base64.b32decode(ALICE_SECRET), int(time.time()) // STEP_SECONDS)
    first = client.post("/internal/otp", json={"customer_id": "alice", "otp": code})
    assert first.status_code == 200 and first.json() == {"customer_id": "alice"}
    again = client.post("/internal/otp", json={"customer_id": "alice", "otp": code})
    assert again.status_code == 401 and again.json() == {"error": "invalid_otp"}
    for body in ({"customer_id": "alice"}, {"customer_id": "alice", "otp": 123456}, ["alice"]):
        assert client.post("/internal/otp", json=body).status_code == 400
    assert client.post("/internal/otp", content=b"not json").status_code == 400


def test_the_dev_pki_publishes_the_banks_own_demo_secrets_owner_only(tmp_path: Path) -> None:
    written = pki.init_dev_pki(tmp_path)
    path = tmp_path / pki.CUSTOMERS_FILE
    assert path in written and stat.S_IMODE(path.stat().st_mode) == 0o600
    published = json.loads(path.read_text())
    assert published == {p.customer.username: {"totp_secret": p.totp_secret} for p in PROFILES}
    assert set(published) == {"alice", "bob"}
    assert all(len(base64.b32decode(c["totp_secret"])) == 20 for c in published.values())  # 160 bits (RFC 4226 R6)
    codes = OneTimeCodes({p.customer.customer_id: p.totp_secret for p in PROFILES}, now=lambda: NOW)
    step = int(NOW) // STEP_SECONDS
    assert codes.check("bob", tpp_totp(published["bob"]["totp_secret"], step))
    # A second run leaves it; a stale copy is put right.
    assert pki.init_dev_pki(tmp_path) == []
    path.write_text("{}")
    assert pki.init_dev_pki(tmp_path) == [path] and json.loads(path.read_text()) == published
