"""Strong customer authentication in the authorization steps, piece by piece: `acr` sca only from the factors an
authorisation really passed, the dynamic link (`linked_terms`) changing with every term a payment page shows, and
the code page showing the payment the code confirms."""
from __future__ import annotations

import dataclasses
import time

import pytest
from support.forms import only_form

from gateway.consents.model import Consent, Kind, Status
from gateway.oauth.grants import ONE_TIME_CODE, PASSWORD, new_grantee
from gateway.web.authorize import OTP_PATH, linked_terms
from gateway.web.pages import page

PAYMENT = Consent(
    consent_id="pdc-1", client_id="tpp-demo", kind=Kind.DOMESTIC_PAYMENT, status=Status.AWAITING_AUTHORISATION,
    created="2026-01-01T00:00:00+00:00", status_updated="2026-01-01T00:00:00+00:00", permissions=(), expires=None,
    transaction_from=None, transaction_to=None, customer_id=None, accounts=(),
    initiation={"InstructedAmount": {"Amount": "12.34", "Currency": "GBP"},
                "CreditorAccount": {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "08080021325698",
                                    "Name": "ACME Utilities"},
                "RemittanceInformation": {"Reference": "INV-0042"}},
    risk={})


def _with_initiation(**changes) -> Consent:
    return dataclasses.replace(PAYMENT, initiation={**PAYMENT.initiation, **changes})


@pytest.mark.parametrize(("factors", "sca"), [
    ([], False), ([PASSWORD], False), ([ONE_TIME_CODE], False), ([PASSWORD, ONE_TIME_CODE], True),
    ((ONE_TIME_CODE, PASSWORD, PASSWORD), True)])
def test_a_grantee_is_strongly_authenticated_only_with_both_factors(factors, sca):
    grantee = new_grantee("subject", "pdc-1", "nonce", factors=factors)
    assert grantee.sca is sca


def test_the_grantees_auth_time_is_when_the_customer_authenticated_not_when_they_agreed():
    then = int(time.time()) - 40
    assert new_grantee("s", "c", None, factors=[PASSWORD, ONE_TIME_CODE], authenticated_at=then).auth_time == then
    assert abs(new_grantee("s", "c", None, factors=[PASSWORD]).auth_time - time.time()) <= 2


def test_the_factors_must_be_named():
    with pytest.raises(TypeError):
        new_grantee("s", "c", None)  # type: ignore[call-arg]  # no default: sca is never assumed


@pytest.mark.parametrize("changed", [
    _with_initiation(InstructedAmount={"Amount": "1234.00", "Currency": "GBP"}),
    _with_initiation(InstructedAmount={"Amount": "12.34", "Currency": "EUR"}),
    _with_initiation(CreditorAccount={**PAYMENT.initiation["CreditorAccount"], "Identification": "40400112345678"}),
    _with_initiation(CreditorAccount={**PAYMENT.initiation["CreditorAccount"], "Name": "Mallory Ltd"}),
    _with_initiation(RemittanceInformation={"Reference": "OTHER"}),
    dataclasses.replace(PAYMENT, consent_id="pdc-2"),  # the same payment, another consent: another authentication
    dataclasses.replace(PAYMENT, terms={"Initiation": PAYMENT.initiation,
                                        "ControlParameters": {"MaximumIndividualAmount": {"Amount": "5.00"}}}),
], ids=["amount", "currency", "payee account", "payee name", "reference", "consent", "control parameters"])
def test_the_link_changes_with_anything_the_customer_confirmed(changed):
    assert linked_terms(changed) != linked_terms(PAYMENT)


def test_the_link_does_not_change_with_the_status_or_the_order_of_fields():
    reordered = dataclasses.replace(PAYMENT, initiation=dict(reversed(list(PAYMENT.initiation.items()))),
                                    status=Status.AUTHORISED, status_updated="2026-01-02T00:00:00+00:00")
    assert linked_terms(reordered) == linked_terms(PAYMENT)


def test_the_code_page_asks_for_otp_and_shows_the_payment_it_confirms():
    shown = page("otp.html", tpp_name="tpp-demo", customer_name="Alice Smith", csrf_token="t0k",
                 action=OTP_PATH, payment=["To: ACME Utilities", "Amount: £12.34 now"], error=None)
    form = only_form(shown.body.decode())
    assert form.action == OTP_PATH and form.hidden == {"csrf_token": "t0k"} and form.inputs == ["otp"]
    assert form.buttons == {"decision": ["deny"]}  # Cancel; Continue is the unnamed default button
    text = shown.body.decode()
    assert "ACME Utilities" in text and "£12.34" in text and 'autocomplete="one-time-code"' in text
    assert shown.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in \
        shown.headers["content-security-policy"]
