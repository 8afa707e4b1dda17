"""The customer pages' refusals (web.pages.refuse and error_page): audited under a catalogued reason only, with the
page catalogue's status and text unless the step gives its own."""
from __future__ import annotations

import pytest

from gateway.call import Call
from gateway.errors import PAGE_REASONS
from gateway.web.pages import error_page, refuse


def _call() -> Call:
    return Call(interaction_id="iid-1", ts="2026-01-01T00:00:00.000+00:00", started=0.0, method="POST")


@pytest.mark.parametrize("reason", sorted(PAGE_REASONS))
def test_a_page_reason_shows_its_catalogued_status_and_text(reason):
    call = _call()
    page = error_page(call, reason)
    assert page.status_code == PAGE_REASONS[reason].status
    assert PAGE_REASONS[reason].message.encode() in page.body and b"iid-1" in page.body
    assert (call.decision, call.reason) == ("refuse", reason)
    assert page.headers["cache-control"] == "no-store"


def test_a_step_may_show_its_own_text_and_status():
    call = _call()
    page = error_page(call, "web.session_missing", "This form has expired. Log in again.", 403)
    assert page.status_code == 403 and b"Log in again." in page.body
    assert (call.decision, call.reason) == ("refuse", "web.session_missing")


def test_another_catalogued_reason_needs_the_steps_text_is_a_400_and_a_5xx_is_an_error():
    call = _call()
    assert error_page(call, "oauth.invalid_request", "Use the form.").status_code == 400
    assert (call.decision, call.reason) == ("refuse", "oauth.invalid_request")
    with pytest.raises(KeyError):
        error_page(_call(), "oauth.invalid_request")  # no page text of its own
    call = _call()
    assert error_page(call, "backend.unavailable", "Your bank cannot be reached.", 502).status_code == 502
    assert (call.decision, call.reason) == ("error", "backend.unavailable")


@pytest.mark.parametrize("typo", ["web.login_faild", "web.csrf", "consent.unknwn"])
def test_an_uncatalogued_reason_is_a_key_error_and_audits_nothing(typo):
    call = _call()
    with pytest.raises(KeyError):
        error_page(call, typo, "text", 400)
    with pytest.raises(KeyError):
        refuse(call, typo)
    assert (call.decision, call.reason) == ("allow", None)


def test_refuse_marks_the_call_refused_under_a_catalogued_reason():
    call = _call()
    refuse(call, "consent.conflict")
    assert (call.decision, call.reason) == ("refuse", "consent.conflict")
