"""The demo customers' authenticator app (RFC 6238 TOTP: HMAC-SHA-1, 30 s steps, 6 digits), from the secrets the dev
PKI publishes (`customers.json`): an implementation of its own, not the bank's, so a mistake in either shows.

A bank accepts each code once, and an authenticator has a new one every 30 s, while the tests log alice in many
times a minute. So the tests' banks (tests/conftest.py) accept codes up to TEST_TOTP_WINDOW steps either side of now,
and `one_time_code` gives every login of the run a step of its own. A bank as `obgw demo` starts it accepts only the
steps next to now: `next_to_now` gives a code that bank has not seen, waiting for the next step if it must.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from pathlib import Path

TOTP_STEP_SECONDS = 30
TEST_TOTP_WINDOW = 10_000
_used: dict[tuple[str, str], set[int]] = {}  # (customer, "" for the whole run or a bank's name) → steps used
_lock = threading.Lock()


def totp(secret: str, step: int) -> str:
    """RFC 6238's code (HMAC-SHA-1, 6 digits) for time step `step`, from a base32 secret."""
    mac = hmac.new(base64.b32decode(secret), step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[offset:offset + 4], 'big') & 0x7FFFFFFF) % 1_000_000:06d}"


def totp_secret(pki: Path, customer: str) -> str:
    return json.loads((pki / "customers.json").read_text())[customer]["totp_secret"]


def _now() -> int:
    return int(time.time()) // TOTP_STEP_SECONDS


def one_time_code(pki: Path, customer: str, bank: str = "") -> str:
    """A code of `customer`'s authenticator for a step no login of this run has used: the current one or one either
    side while there is one (every bank accepts those), else the next after the latest used (a test bank accepts
    it). `bank` names the bank it is for, so that `next_to_now` knows what that bank has seen."""
    now = _now()
    with _lock:
        used = _used.setdefault((customer, ""), set())
        step = next((s for s in (now, now + 1, now - 1) if s not in used), max(used, default=now) + 1)
        used.add(step)
        _used.setdefault((customer, bank), set()).add(step)
    return totp(totp_secret(pki, customer), step)


def next_to_now(pki: Path, customer: str, bank: str) -> str:
    """A code for the current step or one either side that `bank` has not seen from this run, waiting for the next
    step when it has seen all three: for a bank that accepts no others."""
    while True:
        now = _now()
        with _lock:
            seen = _used.setdefault((customer, bank), set())
            step = next((s for s in (now, now + 1, now - 1) if s not in seen), None)
            if step is not None:
                seen.add(step)
                _used.setdefault((customer, ""), set()).add(step)
                return totp(totp_secret(pki, customer), step)
        time.sleep(TOTP_STEP_SECONDS - time.time() % TOTP_STEP_SECONDS + 0.05)


def wrong_code(pki: Path, customer: str, window: int = TEST_TOTP_WINDOW) -> str:
    """A code that is the customer's for no step a bank with `window` would accept."""
    secret, now = totp_secret(pki, customer), _now()
    right = {totp(secret, step) for step in range(now - window - 2, now + window + 3)}
    return next(code for code in (f"{n:06d}" for n in range(1_000_000)) if code not in right)
