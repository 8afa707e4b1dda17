"""How many password guesses reach the bank (issue 14 item 2), counted at the bank: a counting proxy
(tests/support/slow_bank.py) stands in front of the sandbox bank's accounts service, holding each call a while so
that parallel posts really are in flight together. Each test speaks from loopback addresses of its own
(127.0.N.x), so the per-address limits of one test do not touch another's; alice and bob are locked out by the
tests that guess their passwords, so those come last. And every customer page sends HSTS."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support.forms import only_form
from support.gateway import bank_gateway, client_context
from support.processes import Process, python
from support.tpp import Tpp

pytestmark = pytest.mark.e2e

PARALLEL = 50
HSTS = "max-age=31536000"


@pytest.fixture(scope="module")
def counting_bank(bank):
    """The proxy in front of the accounts service: (its URL, a client of its control endpoints)."""
    process = Process(python("tests/support/slow_bank.py", bank[0]))
    url = f"http://127.0.0.1:{int(process.wait_for_line('slow bank ready').split()[-1])}"
    try:
        with httpx.Client(base_url=url, timeout=10) as control:
            yield url, control
    finally:
        process.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank, counting_bank):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, (counting_bank[0], bank[1]))
    yield gw
    assert gw.stop() == 0


def _browser(pki, address: str, cookies: dict | None = None) -> httpx.Client:
    """A customer's browser (no client certificate) connecting from `address`."""
    transport = httpx.HTTPTransport(verify=client_context(pki / "ca.pem"), local_address=address)
    return httpx.Client(transport=transport, cookies=cookies, timeout=30)


def _password_checks(control: httpx.Client) -> int:
    """How many password checks the bank has answered so far."""
    return sum(call["path"] == "/internal/authenticate" for call in control.get("/control/done").json())


def _all_at_once(pki, control, network: int, url: str, fields: dict, cookies: dict) -> tuple[list, int]:
    """PARALLEL posts of one form at once, each from its own address (127.0.`network`.n), while the bank holds each
    call 300 ms: (the answers, how many password checks reached the bank)."""
    before = _password_checks(control)
    start = threading.Barrier(PARALLEL)

    def post(n: int) -> httpx.Response:
        with _browser(pki, f"127.0.{network}.{n + 10}", cookies) as http:
            start.wait(timeout=30)
            return http.post(url, data=fields)

    control.post("/control/delay", params={"ms": 300})
    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            answers = list(pool.map(post, range(PARALLEL)))
    finally:
        control.post("/control/delay", params={"ms": 0})
    return answers, _password_checks(control) - before


def _assert_refused_before_the_bank(gateway, answers: list, reason: str) -> None:
    refused = [a for a in answers if a.status_code == 429]
    assert refused and all(1 <= int(a.headers["retry-after"]) <= 900 for a in refused)
    ids = {a.headers["x-fapi-interaction-id"] for a in refused}
    assert {r["reason"] for r in gateway.audit() if r["interaction_id"] in ids} == {reason}


def test_every_customer_page_sends_hsts(gateway, pki):
    tpp = Tpp(gateway.base, pki)
    try:
        _, pushed = tpp.push(tpp.create_consent(["ReadAccountsBasic"])["ConsentId"])
        with _browser(pki, "127.0.4.1") as browser:
            login = browser.get(gateway.base + "/oauth2/authorize",
                                params={"client_id": tpp.client_id, "request_uri": pushed.request_uri})
            consent = browser.post(gateway.base + only_form(login.text).action,
                                   data={**only_form(login.text).hidden, "username": "alice",
                                         "password": "alice-pass"})
            pages = {
                "authorization login": login,
                "consent": consent,
                "decision (redirect)": browser.post(gateway.base + only_form(consent.text).action, data={
                    **only_form(consent.text).hidden, "account_ids": "acc-alice-current", "decision": "deny"}),
                "authorization error": browser.get(gateway.base + "/oauth2/authorize"),
                "dashboard login": browser.get(gateway.base + "/login"),
                "dashboard without a session (redirect)": browser.get(gateway.base + "/consents"),
                "form without its token": browser.post(gateway.base + "/login", data={"username": "alice"}),
            }
    finally:
        tpp.close()
    assert pages["consent"].status_code == 200 and pages["decision (redirect)"].status_code in (302, 303)
    for name, page in pages.items():
        assert page.headers.get("strict-transport-security") == HSTS, name


def test_fifty_parallel_wrong_passwords_at_the_dashboard_reach_the_bank_at_most_five_times(gateway, pki,
                                                                                          counting_bank):
    with _browser(pki, "127.0.1.1") as browser:
        login = browser.get(gateway.base + "/login")
        cookies = dict(browser.cookies)
    form = only_form(login.text)
    answers, checks = _all_at_once(pki, counting_bank[1], 1, gateway.base + form.action,
                                   {**form.hidden, "username": "alice", "password": "not-alices"}, cookies)
    assert checks <= 5, f"{checks} password checks reached the bank"
    assert {a.status_code for a in answers} == {401, 429}
    _assert_refused_before_the_bank(gateway, answers, "web.login_locked")


def test_fifty_parallel_wrong_passwords_at_the_authorization_login_reach_the_bank_at_most_five_times(
        gateway, pki, counting_bank):
    tpp = Tpp(gateway.base, pki)
    try:
        _, pushed = tpp.push(tpp.create_consent(["ReadAccountsBasic"])["ConsentId"])
    finally:
        tpp.close()
    with _browser(pki, "127.0.2.1") as browser:
        login = browser.get(gateway.base + "/oauth2/authorize",
                            params={"client_id": tpp.client_id, "request_uri": pushed.request_uri})
        cookies = dict(browser.cookies)
    form = only_form(login.text)
    answers, checks = _all_at_once(pki, counting_bank[1], 2, gateway.base + form.action,
                                   {**form.hidden, "username": "bob", "password": "not-bobs"}, cookies)
    assert checks <= 5, f"{checks} password checks reached the bank"
    _assert_refused_before_the_bank(gateway, answers, "web.login_locked")


def test_one_address_trying_many_usernames_is_refused_after_twenty_failures_without_asking_the_bank(
        gateway, pki, counting_bank):
    control = counting_bank[1]
    before = _password_checks(control)
    answers = []
    with _browser(pki, "127.0.3.1") as sprayer:
        page = sprayer.get(gateway.base + "/login")
        for n in range(25):
            page = sprayer.post(gateway.base + "/login", data={**only_form(page.text).hidden,
                                                              "username": f"customer-{n}", "password": "Winter2024!"})
            answers.append(page)
    assert [a.status_code for a in answers] == [401] * 20 + [429] * 5
    assert _password_checks(control) - before == 20
    _assert_refused_before_the_bank(gateway, answers, "web.login_throttled")
    with _browser(pki, "127.0.3.2") as neighbour:  # another address is not held to it
        page = neighbour.get(gateway.base + "/login")
        answer = neighbour.post(gateway.base + "/login", data={**only_form(page.text).hidden,
                                                               "username": "customer-99", "password": "guess"})
    assert answer.status_code == 401 and _password_checks(control) - before == 21
