"""The customer's consent dashboard and revocation from each of its three places, each stopping the very next call
on every worker: the dashboard, the TPP's DELETE and `obgw consents revoke` (CONTRACT §5, §6)."""
from __future__ import annotations

import re
import time

import httpx
import jwt
import pytest
from support.forms import forms, only_form
from support.receiver import receiver_in_thread
from support.tpp import ACCOUNTS, CONSENTS, CUSTOMER_PRESENT, Browser
from support.workers import on_every_worker

pytestmark = pytest.mark.e2e


def _log_in(browser: Browser, customer: str = "alice"):
    login = browser.http.get(browser.base + "/login")
    assert login.status_code == 200 and login.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    answer = browser.submit(login, {"username": customer, "password": f"{customer}-pass"})
    assert answer.status_code == 303 and answer.headers["location"] == "/consents"
    page = browser.http.get(browser.base + "/consents")
    assert page.status_code == 200
    return page


def _revoke_form(page, consent_id: str):
    [form] = [f for f in forms(page.text) if f.action == f"/consents/{consent_id}/revoke"]
    return form


def _section(page, consent_id: str) -> str:
    return page.text.split(f'id="{consent_id}"', 1)[1].split("</section>", 1)[0]


def _fresh_connection_call(tpp, token):
    """A call on a new connection: the two workers share the listening socket, so calls spread over both."""
    with httpx.Client(verify=tpp.context, timeout=15) as http:
        return http.get(tpp.base + ACCOUNTS, headers={"Authorization": f"Bearer {token['access_token']}",
                                                      **CUSTOMER_PRESENT})


def _stopped_on_every_worker(gateway, tpp, token) -> None:
    """The very next call and every one after it is refused, whichever worker serves it (both worker processes)."""
    answers, records = on_every_worker(gateway, lambda: _fresh_connection_call(tpp, token))
    assert {a.status_code for a in answers} == {403}, [a.text for a in answers]
    assert {r["reason"] for r in records} == {"consent.not_authorised"}


def test_the_dashboard_lists_the_consent_with_its_accesses_and_withdraws_it(gateway, tpp, browser):
    token = tpp.consent_token(["ReadAccountsBasic", "ReadBalances"], accounts=["acc-alice-current"])
    assert tpp.get(ACCOUNTS, token).status_code == 200
    page = _log_in(browser)
    assert "tpp-demo" in page.text and token["consent_id"] in page.text
    assert "the balances of those accounts" in page.text and "Everyday" in page.text  # plain words, the account
    assert "GET /open-banking/v3.1/aisp/accounts" in page.text                        # a recent access
    section = _section(page, token["consent_id"])
    assert re.search(r"read your account details, (today|yesterday) \d\d:\d\d", section)  # ... in words
    # The withdrawal is a confirmation step: the consequence, then confirm and keep, around the contract's form.
    withdraw = section.split('<details class="withdraw"', 1)[1].split("</details>", 1)[0]
    assert "<summary>Withdraw this consent</summary>" in withdraw
    assert "tpp-demo can no longer see your account information" in withdraw
    assert f'action="/consents/{token["consent_id"]}/revoke"' in withdraw and "Yes, withdraw it" in withdraw
    assert f'href="/consents#{token["consent_id"]}">No, keep it</a>' in withdraw
    assert browser.http.cookies.get("__Host-obgw-dashboard")
    form = _revoke_form(page, token["consent_id"])
    answer = browser.http.post(browser.base + form.action, data=form.hidden)
    assert answer.status_code == 303
    _stopped_on_every_worker(gateway, tpp, token)
    after = browser.http.get(browser.base + "/consents")
    assert "Revoked" in after.text and f"/consents/{token['consent_id']}/revoke" not in after.text
    # The refresh token of a revoked consent gives nothing either.
    refused = tpp.oauth.request("POST", tpp.metadata["token_endpoint"], withhold_token=True,
                                data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
                                auth=tpp.oauth.client_auth("tls_client_auth"))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("csrf", [None, "forged"])
def test_a_withdrawal_without_the_sessions_csrf_token_changes_nothing(gateway, tpp, browser, csrf):
    token = tpp.consent_token(["ReadAccountsBasic"], accounts=["acc-alice-current"])
    form = _revoke_form(_log_in(browser), token["consent_id"])
    answer = browser.http.post(browser.base + form.action, data={"csrf_token": csrf} if csrf else {})
    assert answer.status_code == 403
    assert tpp.get(ACCOUNTS, token).status_code == 200


def test_a_customer_cannot_withdraw_another_customers_consent(gateway, tpp, pki):
    token = tpp.consent_token(["ReadAccountsBasic"], accounts=["acc-alice-current"])
    bob = Browser(gateway.base, pki)
    try:
        page = _log_in(bob, "bob")
        assert token["consent_id"] not in page.text
        csrf = only_form(page.text).hidden["csrf_token"] if len(forms(page.text)) == 1 else \
            forms(page.text)[-1].hidden["csrf_token"]
        answer = bob.http.post(f"{gateway.base}/consents/{token['consent_id']}/revoke", data={"csrf_token": csrf})
        assert answer.status_code == 404
    finally:
        bob.close()
    assert tpp.get(ACCOUNTS, token).status_code == 200


def test_the_login_form_needs_its_csrf_token_and_a_wrong_password_is_refused(gateway, browser):
    login = browser.http.get(browser.base + "/login")
    no_token = browser.http.post(browser.base + "/login", data={"username": "alice", "password": "alice-pass"})
    assert no_token.status_code == 403
    wrong = browser.submit(browser.http.get(browser.base + "/login"), {"username": "alice", "password": "nope"})
    assert wrong.status_code == 401 and "not right" in wrong.text
    assert login.status_code == 200
    assert browser.http.get(browser.base + "/consents").headers.get("location") == "/login"


def test_the_tpps_delete_stops_the_very_next_call_on_every_worker(gateway, tpp):
    token = tpp.consent_token(["ReadAccountsBasic"], accounts=["acc-alice-current"])
    assert tpp.get(ACCOUNTS, token).status_code == 200
    cc = tpp.client_credentials()
    deleted = tpp.http.delete(tpp.base + f"{CONSENTS}/{token['consent_id']}",
                              headers={"Authorization": f"Bearer {cc['access_token']}"})
    assert deleted.status_code == 204
    _stopped_on_every_worker(gateway, tpp, token)


def test_obgw_consents_revoke_stops_the_next_call_and_the_tpp_is_told_with_a_signed_event(gateway, tpp, pki):
    with receiver_in_thread() as receiver:
        done = gateway.cli("clients", "add", "tpp-demo", "--from-json", str(pki / "tpp-demo.json"),
                           "--notification-url", receiver.url, "--replace")
        assert done.returncode == 0, done.stderr
        token = tpp.consent_token(["ReadAccountsBasic"], accounts=["acc-alice-current"])
        listed = gateway.cli("consents", "list", "--client", "tpp-demo")
        assert any(line.startswith(token["consent_id"] + "\t") and "\tAuthorised\t" in line
                   for line in listed.stdout.splitlines()), listed.stdout
        revoked = gateway.cli("consents", "revoke", token["consent_id"])
        assert revoked.returncode == 0, revoked.stderr
        _stopped_on_every_worker(gateway, tpp, token)
        # The operator's revocation is in the log, by consent, TPP and operating-system user.
        [record] = [r for r in gateway.audit("--consent", token["consent_id"]) if r["method"] == "CLI"]
        assert (record["route"], record["reason"], record["client_id"]) == (
            "obgw consents revoke", "operator.consents_revoke", "tpp-demo") and "@" in record["operator"]
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.1)
    gateway.register_tpps(pki)  # back to the demo registration (no notification URL)
    [event] = receiver.requests
    assert event.headers["content-type"] == "application/secevent+jwt"
    keys = jwt.PyJWKClient(tpp.metadata["jwks_uri"], ssl_context=tpp.context)
    header = jwt.get_unverified_header(event.body)
    assert header["typ"] == "secevent+jwt"
    claims = jwt.decode(event.body, keys.get_signing_key_from_jwt(event.body).key, algorithms=["ES256"],
                        audience="tpp-demo", issuer=tpp.issuer)
    [(kind, detail)] = claims["events"].items()
    assert kind == "urn:uk:org:openbanking:events:consent-authorization-revoked"
    assert detail["subject"]["http://openbanking.org.uk/rid"] == token["consent_id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        delivered = [r for r in gateway.audit("--consent", token["consent_id"]) if r["reason"] == "notify.delivered"]
        if delivered:
            break
        time.sleep(0.2)
    assert len(delivered) == 1 and delivered[0]["route"] == "event-notification"


def test_repeated_wrong_passwords_lock_the_username_for_a_while(gateway, browser):
    answers = []
    for _ in range(6):
        login = browser.http.get(browser.base + "/login")
        answers.append(browser.submit(login, {"username": "mallory", "password": "guess"}))
    assert [a.status_code for a in answers] == [401] * 5 + [429]
    records = [r for r in gateway.audit() if r["interaction_id"] == answers[-1].headers["x-fapi-interaction-id"]]
    assert records[0]["reason"] == "web.login_locked"


def test_the_dashboard_speaks_chinese_when_asked_and_keeps_it_after_login_and_withdrawal(gateway, tpp, browser):
    token = tpp.consent_token(["ReadAccountsBasic", "ReadBalances"], accounts=["acc-alice-current"])
    assert tpp.get(ACCOUNTS + "/acc-alice-current/balances", token).status_code == 200
    login = browser.http.get(browser.base + "/login?lang=zh-CN")
    assert '<html lang="zh-CN">' in login.text and "查看和撤回您已给予的授权" in login.text
    assert {"username", "password"} <= set(only_form(login.text).inputs)
    assert browser.submit(login, {"username": "alice", "password": "alice-pass"}).status_code == 303
    page = browser.http.get(browser.base + "/consents")
    assert '<html lang="zh-CN">' in page.text and "您已授权的应用" in page.text
    section = _section(page, token["consent_id"])
    assert "(已授权)" in section                                               # the status in words, not colour
    assert "这些账户的余额" in section and "撤回此授权" in section and "是，撤回" in section and "不，保留" in section
    assert re.search(r"(今天|昨天) \d\d:\d\d，读取了您的余额", section)
    assert "GET /open-banking/v3.1/aisp/accounts/{AccountId}/balances" in section  # the path beside the words
    assert 'href="/consents?lang=en"' in page.text
    form = _revoke_form(page, token["consent_id"])
    answer = browser.http.post(browser.base + form.action, data=form.hidden)
    assert answer.status_code == 303
    after = browser.http.get(browser.base + answer.headers["location"])
    assert '<html lang="zh-CN">' in after.text and "该授权已撤回。" in after.text and "已撤回" in after.text
    english = browser.http.get(browser.base + "/consents?lang=en")
    assert '<html lang="en-GB">' in english.text and "(Revoked)" in _section(english, token["consent_id"])


def test_a_withdrawal_form_of_an_expired_session_is_refused_in_the_customers_language(gateway, browser):
    answer = browser.http.post(browser.base + "/consents/nope/revoke", data={"csrf_token": "x"},
                               headers={"Accept-Language": "zh-CN"})
    assert answer.status_code == 403 and "此表单已过期。请重新登录。" in answer.text
