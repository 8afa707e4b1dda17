"""Strong customer authentication at the authorization endpoint (CONTRACT §4, issue 18 part 5): the password, then
the one-time code of the customer's authenticator (RFC 6238), both checked by the bank; the id_token's `acr` is sca
only after both; the password alone never reaches the consent page; a wrong, replayed or locked-out code is refused;
and a payment whose authentication was for another amount (or another payment) is refused: dynamic linking, PSD2
RTS Art. 5."""
from __future__ import annotations

import time

import httpx
import jwt
import orjson
import pytest
import redis
from support.authenticator import one_time_code, wrong_code
from support.forms import only_form
from support.tpp import PAYMENT_CONSENTS, Browser, Tpp, domestic_initiation, redirect_params

from gateway.consents.model import instructed_amount, payment_digest
from gateway.store import names
from gateway.store.oauth import AuthorizationStore

pytestmark = pytest.mark.e2e

LOGIN_COOKIE = "__Host-obgw-login"
OTP, DECISION = "/oauth2/authorize/otp", "/oauth2/authorize/decision"
SCA = "urn:openbanking:psd2:sca"


def _push(tpp: Tpp, permissions=("ReadAccountsBasic",)):
    consent_id = tpp.create_consent(list(permissions))["ConsentId"]
    response, pushed = tpp.push(consent_id)
    assert response.status_code == 201, response.text
    return consent_id, pushed


def _push_payment(tpp: Tpp, amount: str):
    created = tpp.payment_consent(domestic_initiation(amount))
    assert created.status_code == 201, created.text
    consent_id = created.json()["Data"]["ConsentId"]
    response, pushed = tpp.push(consent_id, scope="openid payments")
    assert response.status_code == 201, response.text
    return consent_id, pushed


def _status(tpp: Tpp, consent_id: str, path: str = "/open-banking/v3.1/aisp/account-access-consents",
            scope: str = "accounts") -> str:
    return tpp.get(f"{path}/{consent_id}", tpp.client_credentials(scope)).json()["Data"]["Status"]


def _payment_status(tpp: Tpp, consent_id: str) -> str:
    return _status(tpp, consent_id, PAYMENT_CONSENTS, "payments")


def _audited(gateway, response: httpx.Response) -> dict:
    [record] = [r for r in gateway.audit() if r["interaction_id"] == response.headers["x-fapi-interaction-id"]]
    return record


def _id_token(tpp: Tpp, token: dict) -> dict:
    keys = jwt.PyJWKClient(tpp.metadata["jwks_uri"], ssl_context=tpp.context)
    return jwt.decode(token["id_token"], keys.get_signing_key_from_jwt(token["id_token"]).key,
                      algorithms=tpp.metadata["id_token_signing_alg_values_supported"], audience=tpp.client_id)


def _approve(tpp: Tpp, browser: Browser, consent_page: httpx.Response, pushed, **fields) -> dict:
    answer = browser.submit(consent_page, {"account_ids": "acc-alice-current", "decision": "approve", **fields})
    assert answer.status_code in (302, 303), answer.text
    return tpp.exchange(redirect_params(answer)["code"], pushed.code_verifier)


def test_the_password_and_the_code_give_acr_sca_and_the_password_alone_never_reaches_the_consent_page(
        gateway, tpp, browser):
    consent_id, pushed = _push(tpp)
    login = browser.open(tpp.client_id, pushed.request_uri)
    before = browser.http.cookies.get(LOGIN_COOKIE)

    code_page = browser.password(login, "alice")
    assert code_page.status_code == 200 and code_page.headers["cache-control"] == "no-store"
    form = only_form(code_page.text)
    assert form.action == OTP and form.inputs == ["otp"] and form.hidden["csrf_token"]
    # The password alone shows nothing of the consent or the customer's accounts, and cannot decide.
    assert "account_ids" not in code_page.text and "acc-alice" not in code_page.text and "••" not in code_page.text
    after_password = browser.http.cookies.get(LOGIN_COOKIE)
    assert after_password != before  # a new session id at each step up
    early = browser.http.post(tpp.base + DECISION, data={**form.hidden, "account_ids": "acc-alice-current",
                                                        "decision": "approve"})
    assert early.status_code == 400 and "location" not in early.headers and "out of order" in early.text
    assert _audited(gateway, early)["reason"] == "web.session_missing"
    assert _status(tpp, consent_id) == "AwaitingAuthorisation"

    started = int(time.time())
    consent_page = browser.code(code_page, "alice")
    assert consent_page.status_code == 200, consent_page.text
    assert only_form(consent_page.text).choices["account_ids"] == ["acc-alice-current", "acc-alice-savings",
                                                                   "acc-alice-card"]
    assert browser.http.cookies.get(LOGIN_COOKIE) not in (before, after_password)
    token = _approve(tpp, browser, consent_page, pushed)
    claims = _id_token(tpp, token)
    assert claims["acr"] == SCA and claims["openbanking_intent_id"] == consent_id
    assert started - 1 <= claims["auth_time"] <= int(time.time())  # when the code was given
    assert _status(tpp, consent_id) == "Authorised"


def test_a_wrong_code_is_refused_and_audited_and_the_right_one_then_gets_in(gateway, tpp, browser, pki):
    _, pushed = _push(tpp)
    code_page = browser.password(browser.open(tpp.client_id, pushed.request_uri), "alice")
    again = browser.code(code_page, "alice", wrong_code(pki, "alice"))
    assert again.status_code == 401 and "not right" in again.text and only_form(again.text).inputs == ["otp"]
    record = _audited(gateway, again)
    assert record["reason"] == "web.otp_failed" and record["decision"] == "refuse"
    assert "account_ids" in browser.code(again, "alice").text


def test_a_code_once_used_is_refused_in_another_authorisation(tpp, pki):
    code = one_time_code(pki, "alice")
    pages = []
    for _ in range(2):
        _, pushed = _push(tpp)
        browser = Browser(tpp.base, pki)
        try:
            pages.append(browser.code(browser.password(browser.open(tpp.client_id, pushed.request_uri), "alice"),
                                      "alice", code))
        finally:
            browser.close()
    assert pages[0].status_code == 200 and "account_ids" in pages[0].text
    assert pages[1].status_code == 401 and "account_ids" not in pages[1].text  # replayed: the bank refuses it


def test_cancel_at_the_code_page_tells_the_app_access_denied_and_leaves_the_consent_awaiting(tpp, browser):
    consent_id, pushed = _push(tpp)
    code_page = browser.password(browser.open(tpp.client_id, pushed.request_uri), "alice")
    assert only_form(code_page.text).buttons["decision"] == ["deny"]
    answer = browser.submit(code_page, {"decision": "deny"})
    params = redirect_params(answer)
    assert answer.status_code in (302, 303) and params["error"] == "access_denied"
    assert params["state"] == pushed.state and params["iss"] == tpp.issuer and "code" not in params
    assert _status(tpp, consent_id) == "AwaitingAuthorisation"  # nothing was agreed or refused


def test_the_code_page_of_a_payment_shows_the_amount_and_payee_the_code_confirms(tpp, browser):
    _, pushed = _push_payment(tpp, "12.34")
    code_page = browser.password(browser.open(tpp.client_id, pushed.request_uri), "alice")
    assert "£12.34" in code_page.text and "ACME Utilities" in code_page.text and "INV-0042" in code_page.text


def _rewrite_amount(gateway, client_id: str, consent_id: str, amount: str) -> None:
    """The consent changed after the customer confirmed it: rewritten in Redis, consistently (its record, the digest a
    payment must repeat and the amount its funds check asks), as any component with write access could."""
    client = redis.Redis.from_url(gateway.redis_url)
    try:
        key = names.consent(client_id, consent_id)
        record = orjson.loads(client.hget(key, "record"))
        record["initiation"]["InstructedAmount"]["Amount"] = amount
        if record.get("terms"):
            record["terms"]["Initiation"] = record["initiation"]
        client.hset(key, mapping={"record": orjson.dumps(record),
                                  "payment_digest": payment_digest(record["initiation"], record["risk"]),
                                  "instructed_amount": instructed_amount(record["initiation"])})
    finally:
        client.close()


def test_a_payment_authenticated_for_one_amount_is_refused_once_the_consent_says_another(gateway, tpp, browser):
    consent_id, pushed = _push_payment(tpp, "12.34")
    code_page = browser.password(browser.open(tpp.client_id, pushed.request_uri), "alice")
    assert "£12.34" in code_page.text
    consent_page = browser.code(code_page, "alice")
    assert "£12.34" in consent_page.text

    _rewrite_amount(gateway, tpp.client_id, consent_id, "999.99")
    refused = browser.submit(consent_page, {"account_ids": "acc-alice-current", "decision": "approve"})
    assert refused.status_code == 409 and "location" not in refused.headers and "changed" in refused.text
    assert _audited(gateway, refused)["reason"] == "web.sca_relink"
    assert _payment_status(tpp, consent_id) == "AwaitingAuthorisation"
    # A new authentication, of the payment as it now is: the code page shows the new amount, and it is agreed.
    assert {"username", "password"} <= set(only_form(refused.text).inputs)
    code_page = browser.password(refused, "alice")
    assert "£999.99" in code_page.text and "£12.34" not in code_page.text
    token = _approve(tpp, browser, browser.code(code_page, "alice"), pushed)
    assert _id_token(tpp, token)["acr"] == SCA and _payment_status(tpp, consent_id) == "Authorised"


def test_an_authentication_for_one_payment_cannot_approve_another(gateway, tpp, pki):
    """What reusing an earlier authentication for a new authorisation (single sign-on, `prompt=none`, `max_age`)
    would do: alice's password and code, given for a £1.00 payment, carried into the session of a £1000.00 one."""
    small, small_pushed = _push_payment(tpp, "1.00")
    large, large_pushed = _push_payment(tpp, "1000.00")
    mine, other = Browser(tpp.base, pki), Browser(tpp.base, pki)
    client = redis.Redis.from_url(gateway.redis_url)
    store = AuthorizationStore(client)
    try:
        consent_page = mine.login(mine.open(tpp.client_id, small_pushed.request_uri), "alice")
        assert "£1.00" in consent_page.text and "account_ids" in consent_page.text
        other.open(tpp.client_id, large_pushed.request_uri)  # the large payment's session, at its login
        large_params = store.session("authorize", other.http.cookies.get(LOGIN_COOKIE))["params"]
        session_id = mine.http.cookies.get(LOGIN_COOKIE)
        authenticated = store.session("authorize", session_id)
        assert authenticated["factors"] == ["pwd", "otp"]
        store.save_session("authorize", session_id, {**authenticated, "params": large_params}, 600)

        refused = mine.submit(consent_page, {"account_ids": "acc-alice-current", "decision": "approve"})
        assert refused.status_code == 409 and "location" not in refused.headers
        assert _audited(gateway, refused)["reason"] == "web.sca_relink"
        assert _payment_status(tpp, small) == _payment_status(tpp, large) == "AwaitingAuthorisation"
        # Authenticating the large payment itself shows its amount, and then it can be agreed.
        code_page = mine.password(refused, "alice")
        assert "£1000.00" in code_page.text
        token = _approve(tpp, mine, mine.code(code_page, "alice"), large_pushed)
        assert _id_token(tpp, token)["openbanking_intent_id"] == large
        assert _payment_status(tpp, large) == "Authorised" and _payment_status(tpp, small) == "AwaitingAuthorisation"
    finally:
        mine.close()
        other.close()
        client.close()


def test_five_wrong_codes_end_the_session_and_lock_the_customers_codes_in_every_session(gateway, tpp, pki):
    """Last: it locks bob's codes for the rest of the module."""
    consent_id, pushed = _push(tpp)
    browser = Browser(tpp.base, pki)
    try:
        page = browser.password(browser.open(tpp.client_id, pushed.request_uri), "bob")
        wrong = wrong_code(pki, "bob")
        for _ in range(4):
            page = browser.code(page, "bob", wrong)
            assert page.status_code == 401
        ended = browser.code(page, "bob", wrong)
        assert ended.status_code in (302, 303) and redirect_params(ended)["error"] == "access_denied"
    finally:
        browser.close()
    _, pushed = _push(tpp)
    browser = Browser(tpp.base, pki)
    try:
        code_page = browser.password(browser.open(tpp.client_id, pushed.request_uri), "bob")
        assert code_page.status_code == 200  # the password is not what is locked
        locked = browser.code(code_page, "bob")  # the right code: refused before the bank while the lock holds
        assert locked.status_code == 429 and 1 <= int(locked.headers["retry-after"]) <= 900
        assert _audited(gateway, locked)["reason"] == "web.otp_locked"
        assert only_form(locked.text).inputs == ["otp"]
    finally:
        browser.close()
    assert _status(tpp, consent_id) == "AwaitingAuthorisation"


def test_the_code_page_in_chinese_shows_the_payment_the_code_confirms_and_the_code_still_links_to_it(tpp, browser):
    consent_id, pushed = _push_payment(tpp, "12.34")
    code_page = browser.password(browser.open(tpp.client_id, pushed.request_uri), "alice")
    chinese = browser.http.get(tpp.base + "/oauth2/authorize/step?lang=zh-CN")
    assert chinese.status_code == 200 and '<html lang="zh-CN">' in chinese.text
    assert "金额：£12.34，立即付款" in chinese.text and "收款人：ACME Utilities" in chinese.text
    assert "附言：INV-0042" in chinese.text and "6位验证码" in chinese.text
    assert only_form(chinese.text).hidden == only_form(code_page.text).hidden
    consent_page = browser.code(chinese, "alice")  # the language changed nothing the code confirms
    assert consent_page.status_code == 200 and "付款账户" in consent_page.text
    assert "一次性：付款完成后本授权即结束。" in consent_page.text
    answer = browser.submit(consent_page, {"account_ids": "acc-alice-current", "decision": "approve"})
    assert set(redirect_params(answer)) == {"code", "state", "iss"}
    assert _payment_status(tpp, consent_id) == "Authorised"
