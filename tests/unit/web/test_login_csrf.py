"""The dashboard login form's signed double-submit cookie (web.forms.SignedDoubleSubmit, OWASP CSRF Prevention)."""
from __future__ import annotations

import secrets

from gateway.web.forms import SignedDoubleSubmit

KEY = bytes(range(32))


def test_the_token_is_an_hmac_of_the_cookie_under_the_gateways_key_alone():
    csrf = SignedDoubleSubmit(KEY)
    value = csrf.value(None)
    token = csrf.token(value)
    assert token != value and SignedDoubleSubmit(KEY).token(value) == token  # every worker derives the same key
    assert csrf.matches({"csrf_token": [token]}, value)
    assert not SignedDoubleSubmit(secrets.token_bytes(32)).matches({"csrf_token": [token]}, value)  # another key
    assert not csrf.matches({"csrf_token": [token]}, csrf.value(None))       # another browser's cookie
    assert not csrf.matches({"csrf_token": [value]}, value)                  # the cookie itself is no token
    assert not csrf.matches({"csrf_token": [token, token]}, value)           # given twice
    assert not csrf.matches({}, value) and not csrf.matches({"csrf_token": [token]}, None)


def test_a_browsers_well_formed_cookie_is_kept_and_anything_else_replaced():
    csrf = SignedDoubleSubmit(KEY)
    own = secrets.token_urlsafe(32)
    assert csrf.value(own) == own  # several tabs share one cookie
    for odd in ("", "short", own + "x", own[:-1] + "!"):
        assert csrf.value(odd) != odd and len(csrf.value(odd)) == 43
        assert not csrf.matches({"csrf_token": [csrf.token(odd)]}, odd)
