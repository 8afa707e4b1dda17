"""Every resource call is held to its consent, through `obgw serve --workers 2` with real tokens and the sandbox bank:
permissions, selected accounts, field-level minimisation, the transaction window, the unattended allowance, expiry,
and every answer (errors too) valid against the UK OB v3.1.11 schemas."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from support.gateway import bank_gateway
from support.openapi import assert_conforms, assert_ok, assert_refused
from support.tpp import ACCOUNTS, Tpp

pytestmark = pytest.mark.e2e

CURRENT, SAVINGS, CARD = "acc-alice-current", "acc-alice-savings", "acc-alice-card"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def test_basic_accounts_show_only_the_selected_accounts_and_no_identification(gateway, tpp):
    token = tpp.consent_token(["ReadAccountsBasic"], accounts=[CURRENT, CARD])
    body = assert_ok(tpp.get(ACCOUNTS, token), "OBReadAccount6")
    accounts = body["Data"]["Account"]
    assert {a["AccountId"] for a in accounts} == {CURRENT, CARD}
    assert all("Account" not in a and "Servicer" not in a for a in accounts)
    assert {"AccountId", "Currency", "AccountSubType", "Nickname"} <= set(accounts[0])
    assert body["Links"]["Self"] == gateway.base + ACCOUNTS  # never the bank's own URL
    one = assert_ok(tpp.get(f"{ACCOUNTS}/{CARD}", token), "OBReadAccount6")
    assert [a["AccountId"] for a in one["Data"]["Account"]] == [CARD]


@pytest.mark.parametrize("read_pan", [False, True])
def test_detail_accounts_show_identification_with_the_pan_masked_unless_read_pan(gateway, tpp, read_pan):
    permissions = ["ReadAccountsDetail"] + (["ReadPAN"] if read_pan else [])
    token = tpp.consent_token(permissions, accounts=[CURRENT, CARD])
    accounts = {a["AccountId"]: a for a in assert_ok(tpp.get(ACCOUNTS, token), "OBReadAccount6")["Data"]["Account"]}
    [current] = accounts[CURRENT]["Account"]
    [card] = accounts[CARD]["Account"]
    assert current["SchemeName"] == "UK.OBIE.SortCodeAccountNumber" and current["Identification"].isdigit()
    assert accounts[CARD]["Servicer"]["SchemeName"] == "UK.OBIE.BICFI"
    assert card["SchemeName"] == "UK.OBIE.PAN"
    if read_pan:
        assert card["Identification"].isdigit() and len(card["Identification"]) == 16
    else:
        assert card["Identification"][:12] == "*" * 12 and card["Identification"][12:].isdigit()


@pytest.mark.parametrize("permissions, direction, detail", [
    (["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsCredits"], {"Credit"}, False),
    (["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsDebits"], {"Debit"}, False),
    (["ReadAccountsBasic", "ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits"],
     {"Credit", "Debit"}, True),
])
def test_transactions_show_the_granted_directions_and_detail(gateway, tpp, permissions, direction, detail):
    token = tpp.consent_token(permissions, accounts=[CURRENT])
    answer = assert_ok(tpp.get(f"{ACCOUNTS}/{CURRENT}/transactions", token), "OBReadTransaction6")
    records = answer["Data"]["Transaction"]
    assert len(records) > 10
    assert {r["CreditDebitIndicator"] for r in records} == direction
    detail_fields = {"TransactionInformation", "Balance", "MerchantDetails", "CreditorAccount", "DebtorAccount"}
    present = set().union(*(r.keys() for r in records))
    assert bool(present & detail_fields) == detail
    assert {"TransactionId", "BookingDateTime", "Amount", "Status"} <= present


def test_the_consents_transaction_window_bounds_what_leaves(gateway, tpp):
    now = datetime.now(timezone.utc)
    since, until = now - timedelta(days=60), now - timedelta(days=20)
    token = tpp.consent_token(["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsCredits",
                               "ReadTransactionsDebits"], accounts=[CURRENT], TransactionFromDateTime=_iso(since),
                              TransactionToDateTime=_iso(until))

    def booked(**params) -> list[datetime]:
        body = assert_ok(tpp.get(f"{ACCOUNTS}/{CURRENT}/transactions", token, params=params), "OBReadTransaction6")
        return [datetime.fromisoformat(r["BookingDateTime"]) for r in body["Data"]["Transaction"]]

    inside = booked()
    assert inside and all(since - timedelta(seconds=1) <= t <= until for t in inside)
    # Asking for more than the consent allows gets no more; asking for less gets less.
    assert sorted(booked(fromBookingDateTime=_iso(now - timedelta(days=180)), toBookingDateTime=_iso(now))) == \
        sorted(inside)
    narrower = booked(fromBookingDateTime=_iso(now - timedelta(days=40)))
    assert narrower and all(t >= now - timedelta(days=40, seconds=1) for t in narrower) and len(narrower) < len(inside)


def test_an_unselected_or_another_customers_account_is_refused(gateway, tpp):
    token = tpp.consent_token(["ReadAccountsBasic", "ReadBalances"], accounts=[CURRENT])
    for account in (SAVINGS, "acc-bob-current"):
        assert_refused(tpp.get(f"{ACCOUNTS}/{account}", token), 403, "UK.OBIE.Resource.NotFound")
        assert_refused(tpp.get(f"{ACCOUNTS}/{account}/balances", token), 403, "UK.OBIE.Resource.NotFound")
    balances = assert_ok(tpp.get(f"{ACCOUNTS}/{CURRENT}/balances", token), "OBReadBalance1")["Data"]["Balance"]
    assert {b["AccountId"] for b in balances} == {CURRENT}


def test_a_call_needing_a_permission_the_consent_lacks_is_refused(gateway, tpp):
    token = tpp.consent_token(["ReadAccountsBasic"], accounts=[CURRENT])
    answer = tpp.get(f"{ACCOUNTS}/{CURRENT}/balances", token)
    body = assert_refused(answer, 403, "UK.OBIE.Resource.InvalidConsentStatus")
    records = [r for r in gateway.audit("--client", "tpp-demo") if r["interaction_id"] == body["Id"]]
    assert records[0]["reason"] == "consent.permission_missing"


def test_the_fifth_unattended_call_in_a_day_is_refused_while_customer_present_calls_go_on(gateway, tpp):
    token = tpp.consent_token(["ReadAccountsBasic"], accounts=[CURRENT])
    assert [tpp.get(ACCOUNTS, token, unattended=True).status_code for _ in range(4)] == [200] * 4
    refused = tpp.get(ACCOUNTS, token, unattended=True)
    assert_refused(refused, 429, "OBGW.Rules.UnattendedAccessLimit")
    assert 86_000 < int(refused.headers["retry-after"]) <= 86_400
    assert tpp.get(ACCOUNTS, token).status_code == 200                       # the customer is present
    assert tpp.get(ACCOUNTS, token, unattended=True).status_code == 429      # ... and changed nothing


def test_a_consent_expires_to_the_second(gateway, tpp):
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=4)
    token = tpp.consent_token(["ReadAccountsBasic"], accounts=[CURRENT], ExpirationDateTime=_iso(expires))
    while datetime.now(timezone.utc) < expires - timedelta(seconds=0.5):
        assert tpp.get(ACCOUNTS, token).status_code == 200
        time.sleep(0.2)
    time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    body = assert_refused(tpp.get(ACCOUNTS, token), 403, "UK.OBIE.Resource.InvalidConsentStatus")
    [record] = [r for r in gateway.audit("--client", "tpp-demo") if r["interaction_id"] == body["Id"]]
    assert record["reason"] == "consent.expired"


@pytest.fixture(scope="module")
def hurried(tmp_path_factory, pki, bank):
    """A gateway whose new consents lapse after 2 s unless authorised."""
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank, workers=1, OBGW_CONSENT_AUTHORISE_SECONDS="2")
    yield gw
    assert gw.stop() == 0


def test_a_consent_never_authorised_lapses_into_rejected(hurried, pki):
    tpp = Tpp(hurried.base, pki, "tpp-demo")
    consent = tpp.create_consent(["ReadAccountsBasic"])
    token = tpp.client_credentials()
    path = f"/open-banking/v3.1/aisp/account-access-consents/{consent['ConsentId']}"
    fresh = tpp.get(path, token).json()
    assert_conforms(fresh, "OBReadConsentResponse1")
    assert fresh["Data"]["Status"] == "AwaitingAuthorisation"
    time.sleep(2.2)
    lapsed = tpp.get(path, token).json()
    assert_conforms(lapsed, "OBReadConsentResponse1")
    assert lapsed["Data"]["Status"] == "Rejected"
    response, _ = tpp.push(consent["ConsentId"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    tpp.close()


@pytest.mark.parametrize("value", ["garbage", "9999-12-31T23:59:59-23:59", "1066-10-14T09:00:00+00:00"])
def test_a_window_parameter_the_gateway_cannot_read_is_refused_before_the_bank(gateway, tpp, value):
    token = tpp.consent_token(["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsCredits"],
                              accounts=[CURRENT])
    answer = tpp.get(f"{ACCOUNTS}/{CURRENT}/transactions", token, params={"toBookingDateTime": value})
    body = assert_refused(answer, 400, "UK.OBIE.Field.InvalidDate")
    assert body["Errors"][0]["Path"] == "toBookingDateTime"


def test_an_unencoded_plus_in_a_window_offset_is_read_as_the_plus_it_was(gateway, tpp):
    token = tpp.consent_token(["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsCredits"],
                              accounts=[CURRENT])
    since = (datetime.now(timezone.utc) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S+01:00")
    answer = tpp.http.get(f"{tpp.base}{ACCOUNTS}/{CURRENT}/transactions?fromBookingDateTime={since}",
                          headers={"Authorization": f"Bearer {token['access_token']}",
                                   "x-fapi-customer-ip-address": "198.51.100.7"})
    records = assert_ok(answer, "OBReadTransaction6")["Data"]["Transaction"]
    assert records and answer.headers["cache-control"] == "no-store"


def test_many_unattended_calls_at_once_are_still_four(gateway, tpp):
    import concurrent.futures
    token = tpp.consent_token(["ReadAccountsBasic"], accounts=[CURRENT])
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda _: Tpp.get(tpp, ACCOUNTS, token, unattended=True).status_code, range(24)))
    assert statuses.count(200) == 4 and statuses.count(429) == 20
