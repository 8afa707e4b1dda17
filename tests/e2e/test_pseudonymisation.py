"""The audit log is not joinable to customers without the pseudonym key (issue 14 item 5), against a live `obgw serve
--workers 2` in front of the sandbox bank: after alice authorises consents, is read, uses her dashboard and withdraws
one, no key name or value in Redis names her (a dump of Redis alone cannot join her consent ids, which every audit
record carries, to her), while the bank still gets her id, and re-identification with the key still finds her. What
an older version stored in clear keeps working and is sealed at the next start."""
from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
import redis
from support.forms import forms
from support.gateway import Gateway, bank_gateway
from support.tpp import ACCOUNTS, Browser, Tpp

from gateway.audit.customers import CustomerIds
from gateway.store import names
from gateway.store.embedded import running_url

pytestmark = pytest.mark.e2e

CUSTOMER = "alice"  # the sandbox bank's customer id for alice (what it answers at login, and takes in the header)
# Her id as a word of its own, in any case: "acc-alice-current" is an account id (the bank's opaque id, which in the
# sandbox happens to hold her name), not her customer id; "Alice Smith", her name, would count.
NAMED = re.compile(rb"(?<![\w-])alice(?![\w-])", re.IGNORECASE)


@pytest.fixture(scope="module")
def running(tmp_path_factory, pki, bank):
    """The module's gateways: the first, and the one a test restarts it as."""
    gateways = [bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank, workers=2)]
    yield gateways
    assert all(gw.stop() == 0 for gw in gateways)


@pytest.fixture
def gateway(running) -> Gateway:
    return running[-1]


@pytest.fixture(scope="module")
def tokens(running, pki) -> dict[str, dict]:
    """alice's consents to tpp-demo and tpp-other, authorised; a first read of each (the bank got her id)."""
    gw = running[-1]
    tokens = {}
    for name in ("tpp-demo", "tpp-other"):
        tpp = Tpp(gw.base, pki, name)
        try:
            tokens[name] = tpp.consent_token(["ReadAccountsBasic"])
            _reads_alices_accounts(tpp, tokens[name])
        finally:
            tpp.close()
    return tokens


def _reads_alices_accounts(tpp: Tpp, token: dict) -> None:
    """The sandbox answers with a customer's accounts only for the id in `x-bank-customer-id`: alice's, so the
    gateway sent hers."""
    answer = tpp.get(ACCOUNTS, token)
    assert answer.status_code == 200, answer.text
    ids = [account["AccountId"] for account in answer.json()["Data"]["Account"]]
    assert ids and all(account_id.startswith("acc-alice-") for account_id in ids)


def _redis(gateway: Gateway) -> redis.Redis:
    return redis.Redis.from_url(running_url(Path(gateway.env["OBGW_VAR_DIR"]) / "redis"))


def _naming_alice(gateway: Gateway) -> list[bytes]:
    """Every key whose name or value names alice: all of Redis, whatever the type."""
    client = _redis(gateway)
    found = []
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            values: list[bytes] = {
                b"string": lambda: [client.get(key) or b""],
                b"hash": lambda: [b for pair in client.hgetall(key).items() for b in pair],
                b"set": lambda: list(client.smembers(key)),
                b"zset": lambda: list(client.zrange(key, 0, -1)),
                b"list": lambda: client.lrange(key, 0, -1),
                b"stream": lambda: [b for _, fields in client.xrange(key) for pair in fields.items() for b in pair],
            }[kind]()
            if any(NAMED.search(value) for value in (key, *values)):
                found.append(key)
    finally:
        client.close()
    return found


def _dashboard(gateway: Gateway, pki) -> tuple[Browser, str]:
    browser = Browser(gateway.base, pki)
    login = browser.http.get(browser.base + "/login")
    answer = browser.submit(login, {"username": CUSTOMER, "password": f"{CUSTOMER}-pass"})
    assert answer.status_code == 303, answer.text
    page = browser.http.get(browser.base + "/consents")
    assert page.status_code == 200
    return browser, page.text


def test_after_alice_authorises_and_is_read_redis_names_her_nowhere(gateway, tokens):
    assert _naming_alice(gateway) == []


def test_her_dashboard_lists_both_consents_and_withdraws_one_and_redis_still_names_her_nowhere(gateway, pki,
                                                                                                tokens):
    browser, page = _dashboard(gateway, pki)
    try:
        assert tokens["tpp-demo"]["consent_id"] in page and tokens["tpp-other"]["consent_id"] in page
        [form] = [f for f in forms(page) if f.action == f"/consents/{tokens['tpp-demo']['consent_id']}/revoke"]
        assert browser.http.post(browser.base + form.action, data=form.hidden).status_code == 303
        assert _naming_alice(gateway) == []  # her dashboard session is live: it names her only sealed
    finally:
        browser.close()
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    try:
        assert tpp.get(ACCOUNTS, tokens["tpp-demo"]).status_code == 403
    finally:
        tpp.close()


def test_reidentification_with_the_pseudonym_key_still_finds_her_records(gateway, tokens):
    found = gateway.audit("--customer", CUSTOMER)
    consents = {record["consent_id"] for record in found}
    assert {tokens["tpp-demo"]["consent_id"], tokens["tpp-other"]["consent_id"]} <= consents
    assert {record["route"] for record in found} >= {ACCOUNTS, "/consents/{ConsentId}/revoke"}


def _as_an_older_version_stored_it(gateway: Gateway, pki, consent_id: str) -> None:
    """Rewrite tpp-other's consent as versions before item 5 kept it: the customer id in clear in the consent, the
    index named by it, and in the consent's refresh-token record."""
    client = _redis(gateway)
    try:
        key = names.consent("tpp-other", consent_id)
        record = orjson.loads(client.hget(key, "record"))
        record["customer_id"] = CUSTOMER
        client.hset(key, mapping={"customer_id": CUSTOMER, "record": orjson.dumps(record)})
        subject = CustomerIds.from_file(pki / "audit.key").pseudonym(CUSTOMER)
        client.srem(names.subject_consents(subject), f"tpp-other {consent_id}")
        client.sadd(names.customer_consents(CUSTOMER), f"tpp-other {consent_id}")
        for refresh in client.scan_iter(match=names.refresh_token("tpp-other", "*")):
            stored = orjson.loads(client.get(refresh))
            client.set(refresh, orjson.dumps({**stored, "customer_id": CUSTOMER}), keepttl=True)
    finally:
        client.close()


def _refreshes(tpp: Tpp, token: dict) -> bool:
    answer = tpp.oauth.request("POST", tpp.metadata["token_endpoint"], withhold_token=True,
                               data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
                               auth=tpp.oauth.client_auth("tls_client_auth"))
    return answer.status_code == 200 and "access_token" in answer.json()


def test_a_consent_an_older_version_stored_in_clear_works_and_is_sealed_at_the_next_start(running, pki, tokens):
    gateway, token = running[-1], tokens["tpp-other"]
    _as_an_older_version_stored_it(gateway, pki, token["consent_id"])
    assert _naming_alice(gateway)  # in clear, as an older version left it
    tpp = Tpp(gateway.base, pki, "tpp-other")
    try:
        _reads_alices_accounts(tpp, token)
        browser, page = _dashboard(gateway, pki)
        browser.close()
        assert token["consent_id"] in page

        assert gateway.stop() == 0
        running.append(Gateway(gateway.env, workers=2, port=gateway.port))
        assert _naming_alice(running[-1]) == []
        _reads_alices_accounts(tpp, token)
        assert _refreshes(tpp, token)
    finally:
        tpp.close()
    browser, page = _dashboard(running[-1], pki)
    browser.close()
    assert token["consent_id"] in page
