"""The customer's login and consent pages, and the consent resource as the TPP sees it (CONTRACT §4, §5)."""
from __future__ import annotations

import re

import pytest
from support.forms import only_form
from support.tpp import ACCOUNTS, CONSENTS, Tpp, redirect_params

pytestmark = pytest.mark.e2e


def _pushed(tpp, permissions=("ReadAccountsBasic", "ReadBalances")):
    consent = tpp.create_consent(list(permissions))
    response, pushed = tpp.push(consent["ConsentId"])
    assert response.status_code == 201, response.text
    return consent["ConsentId"], pushed


def _status(tpp, consent_id) -> str:
    token = tpp.client_credentials()
    return tpp.get(f"{CONSENTS}/{consent_id}", token).json()["Data"]["Status"]


def _assert_protected_page(response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_the_pages_name_the_tpp_explain_the_permissions_and_protect_the_session(tpp, browser):
    consent_id, pushed = _pushed(tpp)
    login = browser.open(tpp.client_id, pushed.request_uri)
    assert login.status_code == 200 and "tpp-demo" in login.text
    _assert_protected_page(login)
    cookie = login.headers["set-cookie"]
    assert cookie.startswith("__Host-obgw-login=") and "Secure" in cookie and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    form = only_form(login.text)
    assert {"username", "password"} <= set(form.inputs) and form.hidden["csrf_token"]
    before_login = browser.http.cookies.get("__Host-obgw-login")

    page = browser.login(login, "alice")
    assert page.status_code == 200
    _assert_protected_page(page)
    # Session fixation: logging in issues a new session id; the old one is worth nothing.
    assert browser.http.cookies.get("__Host-obgw-login") != before_login
    consent_form = only_form(page.text)
    assert consent_form.choices["account_ids"] == ["acc-alice-current", "acc-alice-savings", "acc-alice-card"]
    assert consent_form.buttons["decision"] == ["approve", "deny"] and consent_form.hidden["csrf_token"]
    assert "the balances of those accounts" in page.text                # ReadBalances, in plain words
    assert "your transactions in full" in page.text                      # ... and what it will NOT see
    assert "https://tpp.example.com" in page.headers["content-security-policy"]  # form-action to the redirect

    answer = browser.submit(page, {"account_ids": ["acc-alice-current"], "decision": "approve"})
    params = redirect_params(answer)
    assert answer.status_code in (302, 303) and set(params) == {"code", "state", "iss"}
    assert params["state"] == pushed.state and params["iss"] == tpp.issuer
    assert _status(tpp, consent_id) == "Authorised"


def test_deny_redirects_with_access_denied_and_rejects_the_consent(tpp, browser):
    consent_id, pushed = _pushed(tpp)
    params = browser.authorize(tpp.client_id, pushed.request_uri, decision="deny")
    assert params["error"] == "access_denied" and params["state"] == pushed.state and params["iss"] == tpp.issuer
    assert "code" not in params
    assert _status(tpp, consent_id) == "Rejected"


def test_a_wrong_password_shows_the_login_again_and_changes_nothing(gateway, tpp, browser):
    consent_id, pushed = _pushed(tpp)
    login = browser.open(tpp.client_id, pushed.request_uri)
    again = browser.login(login, "alice", "not-her-password")
    assert again.status_code == 401 and "not right" in again.text
    assert set(only_form(again.text).inputs) >= {"username", "password"}
    assert _status(tpp, consent_id) == "AwaitingAuthorisation"
    [record] = [r for r in gateway.audit() if r["interaction_id"] == again.headers["x-fapi-interaction-id"]]
    assert record["reason"] == "web.login_failed" and record["decision"] == "refuse"
    assert browser.login(again, "alice").status_code == 200  # the right password still works after one miss


@pytest.mark.parametrize("csrf", [None, "forged"])
def test_a_decision_without_the_sessions_csrf_token_is_refused(tpp, browser, csrf):
    consent_id, pushed = _pushed(tpp)
    page = browser.login(browser.open(tpp.client_id, pushed.request_uri), "alice")
    form = only_form(page.text)
    fields = {"account_ids": "acc-alice-current", "decision": "approve"}
    if csrf:
        fields["csrf_token"] = csrf
    answer = browser.http.post(tpp.base + form.action, data=fields)
    assert answer.status_code == 403 and "location" not in answer.headers
    assert _status(tpp, consent_id) == "AwaitingAuthorisation"


def test_an_account_the_customer_was_not_offered_cannot_be_chosen(tpp, browser):
    consent_id, pushed = _pushed(tpp)
    page = browser.login(browser.open(tpp.client_id, pushed.request_uri), "alice")
    answer = browser.submit(page, {"account_ids": ["acc-bob-current"], "decision": "approve"})
    assert answer.status_code == 400 and "location" not in answer.headers
    assert _status(tpp, consent_id) == "AwaitingAuthorisation"


def test_a_tpp_sees_only_its_own_consents_and_delete_ends_their_tokens(gateway, pki, tpp):
    token = tpp.consent_token(["ReadAccountsBasic"])
    consent_id = token["consent_id"]
    assert tpp.get(ACCOUNTS, token).status_code == 200
    other = Tpp(gateway.base, pki, "tpp-other")
    other_cc = other.client_credentials()
    assert other.get(f"{CONSENTS}/{consent_id}", other_cc).status_code == 400
    assert other.http.delete(tpp.base + f"{CONSENTS}/{consent_id}",
                             headers={"Authorization": f"Bearer {other_cc['access_token']}"}).status_code == 400
    other.close()
    assert tpp.get(ACCOUNTS, token).status_code == 200  # the other TPP changed nothing

    cc = tpp.client_credentials()
    deleted = tpp.http.delete(tpp.base + f"{CONSENTS}/{consent_id}",
                              headers={"Authorization": f"Bearer {cc['access_token']}"})
    assert deleted.status_code == 204
    assert tpp.get(f"{CONSENTS}/{consent_id}", cc).status_code == 400
    refused = tpp.get(ACCOUNTS, token)
    assert refused.status_code == 403 and refused.json()["Errors"][0]["ErrorCode"] == \
        "UK.OBIE.Resource.InvalidConsentStatus"


def test_a_consent_token_cannot_create_consents_and_a_client_token_cannot_read_accounts(tpp):
    consent_bound = tpp.consent_token(["ReadAccountsBasic"])
    client_only = tpp.client_credentials()
    assert tpp.get(ACCOUNTS, client_only).status_code == 403
    created = tpp.http.post(tpp.base + CONSENTS, json={"Data": {"Permissions": ["ReadAccountsBasic"]}, "Risk": {}},
                            headers={"Authorization": f"Bearer {consent_bound['access_token']}"})
    assert created.status_code == 403


def test_an_invalid_consent_request_is_refused_with_the_field_named(gateway, tpp):
    token = tpp.client_credentials()
    response = tpp.http.post(tpp.base + CONSENTS, json={"Data": {"Permissions": ["ReadTransactionsBasic"]},
                                                       "Risk": {}},
                             headers={"Authorization": f"Bearer {token['access_token']}"})
    assert response.status_code == 400
    error = response.json()["Errors"][0]
    assert error["ErrorCode"] == "UK.OBIE.Field.Invalid" and error["Path"] == "Data.Permissions"
    [record] = [r for r in gateway.audit() if r["interaction_id"] == response.headers["x-fapi-interaction-id"]]
    assert record["reason"] == "consent.field_invalid" and record["client_id"] == "tpp-demo"


def _html_lang(page) -> str:
    return page.text.split('<html lang="', 1)[1].split('"', 1)[0]


def test_lang_zh_cn_speaks_chinese_from_login_to_the_consent_page_and_the_journey_still_ends_at_the_app(tpp, browser):
    consent = tpp.create_consent(["ReadAccountsBasic", "ReadBalances"], ExpirationDateTime="2027-01-01T10:00:00+00:00",
                                 TransactionFromDateTime="2026-06-01T00:00:00+00:00")
    response, pushed = tpp.push(consent["ConsentId"])
    assert response.status_code == 201, response.text
    login = browser.http.get(tpp.base + "/oauth2/authorize", params={
        "client_id": tpp.client_id, "request_uri": pushed.request_uri, "lang": "zh-CN"})
    assert login.status_code == 200 and _html_lang(login) == "zh-CN" and "登录您的银行" in login.text
    assert browser.http.cookies.get("__Host-obgw-lang") == "zh-CN"
    _assert_protected_page(login)
    assert set(only_form(login.text).inputs) >= {"username", "password"}  # the contract's fields, whatever language
    page = browser.login(login, "alice")  # kept through the password and the code steps without a parameter
    assert page.status_code == 200 and _html_lang(page) == "zh-CN"
    assert "这些账户的余额" in page.text and "您的全部交易信息" in page.text       # will and will not see
    assert "至 2027年1月1日，除非您提前撤回。" in page.text                        # for how long, as a Chinese date
    assert "仅限 2026年6月1日 至 现在 的交易。" in page.text
    assert "the balances of those accounts" not in page.text
    form = only_form(page.text)
    assert form.buttons["decision"] == ["approve", "deny"] and form.choices["account_ids"]
    params = redirect_params(browser.submit(page, {"account_ids": ["acc-alice-current"], "decision": "approve"}))
    assert set(params) == {"code", "state", "iss"} and _status(tpp, consent["ConsentId"]) == "Authorised"


def test_the_language_link_shows_the_same_step_again_in_the_other_language_and_changes_nothing(tpp, browser):
    consent_id, pushed = _pushed(tpp)
    login = browser.http.get(tpp.base + "/oauth2/authorize", params={
        "client_id": tpp.client_id, "request_uri": pushed.request_uri}, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert _html_lang(login) == "zh-CN" and 'href="/oauth2/authorize/step?lang=en"' in login.text
    english = browser.http.get(tpp.base + "/oauth2/authorize/step", params={"lang": "en"},
                               headers={"Accept-Language": "zh-CN"})
    assert english.status_code == 200 and _html_lang(english) == "en-GB" and "Log in to your bank" in english.text
    _assert_protected_page(english)
    assert only_form(english.text).hidden == only_form(login.text).hidden  # the same session, the same form
    page = browser.login(english, "alice")
    assert _html_lang(page) == "en-GB" and "the balances of those accounts" in page.text
    chinese = browser.http.get(tpp.base + "/oauth2/authorize/step?lang=zh-CN")
    assert _html_lang(chinese) == "zh-CN" and "这些账户的余额" in chinese.text
    assert only_form(chinese.text).choices == only_form(page.text).choices
    assert _status(tpp, consent_id) == "AwaitingAuthorisation"
    params = redirect_params(browser.submit(chinese, {"account_ids": ["acc-alice-current"], "decision": "deny"}))
    assert params["error"] == "access_denied" and _status(tpp, consent_id) == "Rejected"


def test_ui_locales_of_the_pushed_request_chooses_the_language_unless_the_customer_chose(tpp, browser):
    consent = tpp.create_consent(["ReadAccountsBasic"])
    response, pushed = tpp.push(consent["ConsentId"], ui_locales="zh-CN en")
    assert response.status_code == 201, response.text
    login = browser.open(tpp.client_id, pushed.request_uri)
    assert _html_lang(login) == "zh-CN"
    consent = tpp.create_consent(["ReadAccountsBasic"])
    response, pushed = tpp.push(consent["ConsentId"], ui_locales="zh-CN")
    chosen = browser.http.get(tpp.base + "/oauth2/authorize", params={
        "client_id": tpp.client_id, "request_uri": pushed.request_uri, "lang": "en"})
    assert _html_lang(chosen) == "en-GB"


def test_the_step_page_without_a_session_is_the_expired_session_page(tpp, browser):
    shown = browser.http.get(tpp.base + "/oauth2/authorize/step?lang=zh-CN")
    assert shown.status_code == 400 and "您的会话已过期" in shown.text and _html_lang(shown) == "zh-CN"


def test_the_consent_page_says_who_asks_for_how_long_and_hides_account_numbers(tpp, browser):
    consent_id, pushed = _pushed(tpp)
    page = browser.login(browser.open(tpp.client_id, pushed.request_uri), "alice")
    assert '<span class="tpp">tpp-demo</span> is asking' in page.text
    assert "Until you withdraw it." in page.text                 # no ExpirationDateTime
    assert "you go straight back to" in page.text
    labels = page.text.split('id="accounts"', 1)[1].split("</fieldset>", 1)[0]
    assert "••" in labels and not re.search(r"\d{5,}", labels)  # masked numbers, no balances
    assert 'for="account-1"' in labels and 'id="account-1"' in labels  # each choice labelled
