"""Variable Recurring Payments (UK OB VRP v3.1.11) through `obgw serve` with two workers and the sandbox bank: the
consent's ControlParameters held by the gateway before the bank — the individual maximum, periodic limits with
Consent and Calendar alignment (exactly the payments that fit pass when 20 race across both workers), the validity
window — many payments under one consent, each signed and idempotent, and DELETE ending it."""
from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
import orjson
import pytest
from support.gateway import bank_gateway, client_context
from support.openapi import assert_conforms
from support.payment_data import vrp_control
from support.tpp import CUSTOMER_PRESENT, Browser, Tpp

from gateway.payments.jws import sign_detached

pytestmark = pytest.mark.e2e

CONSENTS = "/open-banking/v3.1/pisp/domestic-vrp-consents"
PAYMENTS = "/open-banking/v3.1/pisp/domestic-vrps"
CREDITOR = {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "77100112345678",
            "Name": "Alice Smith (savings)"}
INITIATION = {"CreditorAccount": CREDITOR, "RemittanceInformation": {"Reference": "SWEEP"}}
RACERS = 20
FAILS = "UK.OBIE.Rules.FailsControlParameters"       # refused by the gateway, held to the ControlParameters
NO_FUNDS = "OBGW.Bank.SBOX.InsufficientFunds"        # refused by the bank (sandbox's code, in obgw's namespace)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank)
    try:  # the races send a few hundred calls in seconds: the TPP's rate limit is not what is tested here
        assert gw.cli("clients", "set-tier", "tpp-demo", "unlimited").returncode == 0
    except BaseException:
        gw.stop()
        raise
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def vrp(module_tpp):
    return module_tpp


def _signed(tpp: Tpp, body: dict, token: str, key: str | None = None) -> tuple[bytes, dict]:
    content = orjson.dumps(body)
    return content, {"Authorization": f"Bearer {token}", "content-type": "application/json", **CUSTOMER_PRESENT,
                     "x-idempotency-key": key or secrets.token_hex(8),
                     "x-jws-signature": sign_detached(content, tpp.jwk, tpp.client_id)}


def _consent(tpp: Tpp, control: dict, pages: list | None = None) -> tuple[str, str]:
    """A VRP consent with `control`, authorised by alice: (consent id, access token)."""
    cc = tpp.client_credentials("payments")["access_token"]
    content, headers = _signed(tpp, {"Data": {"ControlParameters": control, "Initiation": INITIATION},
                                     "Risk": {}}, cc)
    created = tpp.http.post(tpp.base + CONSENTS, content=content, headers=headers)
    assert created.status_code == 201, created.text
    assert_conforms(created.json(), "OBDomesticVRPConsentResponse", "vrp")
    assert "x-jws-signature" in created.headers
    consent_id = created.json()["Data"]["ConsentId"]
    token = tpp.authorise_payment(consent_id, inspect=pages.append if pages is not None else None)
    return consent_id, token["access_token"]


def _body(consent_id: str, amount: str) -> dict:
    return {"Data": {"ConsentId": consent_id, "PSUAuthenticationMethod": "UK.OBIE.SCANotRequired",
                     "VRPType": "UK.OBIE.VRPType.Sweeping", "Initiation": INITIATION,
                     "Instruction": {"InstructionIdentification": secrets.token_hex(8),
                                     "EndToEndIdentification": secrets.token_hex(8),
                                     "InstructedAmount": {"Amount": amount, "Currency": "GBP"},
                                     "CreditorAccount": CREDITOR}}, "Risk": {}}


def _pay(tpp: Tpp, consent_id: str, token: str, amount: str, http: httpx.Client | None = None,
         key: str | None = None, body: dict | None = None) -> httpx.Response:
    content, headers = _signed(tpp, body or _body(consent_id, amount), token, key)
    return (http or tpp.http).post(tpp.base + PAYMENTS, content=content, headers=headers)


def _outcome(response: httpx.Response) -> tuple[int, str | None]:
    """(status, the first ErrorCode or None): who refused a payment, and why."""
    if response.status_code < 400:
        return response.status_code, None
    return response.status_code, response.json()["Errors"][0]["ErrorCode"]


def _race_outcomes(tpp: Tpp, pki, consent_id: str, token: str, amounts: list[str]) -> list[tuple[int, str | None]]:
    """`amounts` paid at once, each on a fresh connection (so both workers take part); their outcomes, in order."""
    def one(amount: str) -> tuple[int, str | None]:
        context = client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")
        with httpx.Client(verify=context, timeout=20) as http:
            return _outcome(_pay(tpp, consent_id, token, amount, http))
    with ThreadPoolExecutor(len(amounts)) as pool:
        return list(pool.map(one, amounts))


def _race(tpp: Tpp, pki, consent_id: str, token: str, amounts: list[str]) -> list[int]:
    """`amounts` paid at once (as `_race_outcomes`); their statuses."""
    return [status for status, _ in _race_outcomes(tpp, pki, consent_id, token, amounts)]


def _clear_of_midnight(margin: float = 10.0) -> datetime:
    """Now (UTC), at least `margin` seconds before the next UTC midnight (waiting past it if need be, at most
    `margin` seconds): a test of the whole-day validity window must not see the date change under it."""
    now = datetime.now(timezone.utc)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if (midnight - now).total_seconds() < margin:
        time.sleep((midnight - now).total_seconds() + 0.1)
        now = datetime.now(timezone.utc)
    return now


def test_many_payments_under_one_consent_each_signed_idempotent_and_readable(vrp):
    pages: list = []
    consent_id, token = _consent(vrp, vrp_control(), pages)
    assert "up to £50.00 each" in pages[0].text and "At most £100.00 a month (calendar)" in pages[0].text
    key = secrets.token_hex(8)
    body = _body(consent_id, "10.00")
    first = _pay(vrp, consent_id, token, "10.00", key=key, body=body)
    assert first.status_code == 201, first.text
    assert_conforms(first.json(), "OBDomesticVRPResponse", "vrp")
    assert "x-jws-signature" in first.headers
    replay = _pay(vrp, consent_id, token, "10.00", key=key, body=body)
    assert (replay.status_code, replay.content) == (201, first.content)
    second = _pay(vrp, consent_id, token, "15.00")
    assert second.status_code == 201, second.text
    payment_id = second.json()["Data"]["DomesticVRPId"]
    vrp.read_payment(f"{PAYMENTS}/{payment_id}", token, "OBDomesticVRPResponse", "OBDomesticVRPDetails", "vrp")


def test_a_payment_over_the_individual_maximum_is_refused_before_the_bank(vrp):
    consent_id, token = _consent(vrp, vrp_control(maximum="20.00"))
    refused = _pay(vrp, consent_id, token, "20.01")
    assert refused.status_code == 400, refused.text
    assert_conforms(refused.json(), "OBErrorResponse1")
    assert refused.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Rules.FailsControlParameters"
    assert _pay(vrp, consent_id, token, "20.00").status_code == 201


def test_concurrent_payments_over_the_individual_maximum_are_refused_and_the_rest_pass(vrp, pki):
    # Half at or under £20.00, half over it, interleaved; all 20 together (£461.73) fit in the month's £1000, so
    # only the individual maximum can refuse any of them.
    under = ["20.00", "0.01", "19.99", "5.00", "12.34", "20.00", "1.00", "19.00", "7.77", "10.00"]
    over = ["20.01", "50.00", "20.02", "21.00", "99.99", "25.00", "20.10", "30.00", "40.00", "20.50"]
    amounts = [amount for pair in zip(under, over, strict=True) for amount in pair]
    assert sum(map(Decimal, amounts)) <= 1000
    consent_id, token = _consent(vrp, vrp_control(maximum="20.00", limits=(("Month", "Consent", "1000.00"),)))
    outcomes = _race_outcomes(vrp, pki, consent_id, token, amounts)
    expected = [(201, None) if Decimal(amount) <= Decimal("20.00") else (400, FAILS) for amount in amounts]
    assert list(zip(amounts, outcomes, strict=True)) == list(zip(amounts, expected, strict=True))


@pytest.mark.parametrize("limit", [("Week", "Consent", "100.00"), ("Month", "Calendar", "100.00")])
def test_concurrent_payments_pass_exactly_as_far_as_a_periodic_limit_allows(vrp, pki, limit):
    # Valid from the first of this month: a Calendar month's limit is whole (pro-rated only in the period the consent
    # starts in, by the days left), and a Consent-aligned week starts on a day of its own.
    now = datetime.now(timezone.utc)
    since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).isoformat()
    consent_id, token = _consent(vrp, vrp_control(limits=(limit,), ValidFromDateTime=since))
    statuses = _race(vrp, pki, consent_id, token, ["7.00"] * RACERS)
    assert set(statuses) <= {201, 400}, statuses
    assert statuses.count(201) == 100 // 7  # 14 of 20: exactly as many as fit in £100, whatever their order
    assert _pay(vrp, consent_id, token, "7.00").status_code == 400
    assert _pay(vrp, consent_id, token, "2.00").status_code == 201  # £98 + £2: the room left still fits


def test_a_payment_before_the_consent_is_valid_is_refused(vrp):
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0).isoformat()
    consent_id, token = _consent(vrp, vrp_control(ValidFromDateTime=tomorrow))
    refused = _pay(vrp, consent_id, token, "1.00")
    assert refused.status_code == 400, refused.text
    assert refused.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Rules.FailsControlParameters"


def test_concurrent_payments_before_the_validity_window_opens_are_all_refused(vrp, pki):
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0).isoformat()
    consent_id, token = _consent(vrp, vrp_control(ValidFromDateTime=tomorrow))
    assert _race_outcomes(vrp, pki, consent_id, token, ["1.00"] * RACERS) == [(400, FAILS)] * RACERS


def test_the_validity_window_is_whole_days_and_a_closed_one_refuses_every_concurrent_payment(vrp, pki):
    # The spec disregards the time of ValidFromDateTime/ValidToDateTime: the window is whole (UTC) days, both
    # inclusive, so it cannot close seconds from now; it closes at the end of ValidToDateTime's day. A consent
    # ending at today's first second is still good all day; one ending a second before it is over.
    now = _clear_of_midnight()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = (today - timedelta(days=3)).isoformat()
    closed_id, closed_token = _consent(vrp, vrp_control(ValidFromDateTime=since,
                                                     ValidToDateTime=(today - timedelta(seconds=1)).isoformat()))
    open_id, open_token = _consent(vrp, vrp_control(ValidFromDateTime=since, ValidToDateTime=today.isoformat()))
    assert _race_outcomes(vrp, pki, closed_id, closed_token, ["1.00"] * RACERS) == [(400, FAILS)] * RACERS
    assert _race_outcomes(vrp, pki, open_id, open_token, ["1.00"] * RACERS) == [(201, None)] * RACERS


def test_payments_the_bank_refuses_use_none_of_a_periodic_limit(vrp, pki):
    # A limit far beyond alice's funds: a payment within it the bank refuses (insufficient funds), and where the
    # gateway's count stands shows in who refuses the next one, the bank (room left) or the gateway (none).
    limit = Decimal("1000000.00")
    consent_id, token = _consent(vrp, vrp_control(maximum=str(limit), limits=(("Month", "Consent", str(limit)),)))
    assert _outcome(_pay(vrp, consent_id, token, str(limit))) == (400, NO_FUNDS)
    assert _outcome(_pay(vrp, consent_id, token, str(limit))) == (400, NO_FUNDS)  # the whole limit is still there
    assert _outcome(_pay(vrp, consent_id, token, "25.00")) == (201, None)
    # Ten £600,000 payments (the bank refuses each; two never fit together) race ten of £5 (they always fit).
    big, small = "600000.00", "5.00"
    outcomes = _race_outcomes(vrp, pki, consent_id, token, [big, small] * (RACERS // 2))
    assert outcomes[1::2] == [(201, None)] * (RACERS // 2), outcomes
    assert set(outcomes[0::2]) <= {(400, NO_FUNDS), (400, FAILS)} and (400, NO_FUNDS) in outcomes[0::2], outcomes
    # Exactly £75 counts: the room left reaches the bank, a penny more is the gateway's to refuse.
    left = limit - 25 - 10 * 5
    assert _outcome(_pay(vrp, consent_id, token, str(left + Decimal("0.01")))) == (400, FAILS)
    assert _outcome(_pay(vrp, consent_id, token, str(left))) == (400, NO_FUNDS)


def test_a_deleted_consent_refuses_the_next_payment(vrp):
    consent_id, token = _consent(vrp, vrp_control())
    assert _pay(vrp, consent_id, token, "1.00").status_code == 201
    cc = vrp.client_credentials("payments")["access_token"]
    deleted = vrp.http.delete(f"{vrp.base}{CONSENTS}/{consent_id}", headers={"Authorization": f"Bearer {cc}"})
    assert deleted.status_code == 204, deleted.text
    after = _pay(vrp, consent_id, token, "1.00")
    assert after.status_code == 403, after.text


def test_the_dashboard_shows_a_vrp_consents_limits_and_what_is_used(gateway, pki, vrp):
    consent_id, token = _consent(vrp, vrp_control(limits=(("Month", "Consent", "100.00"),)))
    assert _pay(vrp, consent_id, token, "12.50").status_code == 201
    browser = Browser(gateway.base, pki)
    try:
        login = browser.http.get(gateway.base + "/login")
        assert browser.submit(login, {"username": "alice", "password": "alice-pass"}).status_code == 303
        page = browser.http.get(gateway.base + "/consents")
    finally:
        browser.close()
    section = page.text[page.text.index(f'id="{consent_id}"'):].split("</section>")[0]
    assert "Payments of up to £50.00 each" in section
    assert "Used this month" in section and "£12.50 of £100.00" in section
    assert f"/consents/{consent_id}/revoke" in section
