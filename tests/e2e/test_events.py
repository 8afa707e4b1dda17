"""The UK OB Events API through `obgw serve` (2 workers) and the sandbox bank, as TPPs use it: the event subscription
(POST, GET, PUT, DELETE; one per TPP), real-time delivery of signed SETs to the subscription's CallbackUrl (a
loopback receiver: this gateway runs with OBGW_EVENTS_ALLOW_LOOPBACK=1), aggregated polling with `ack`, a consent's
authorisation and revocation and a payment's status change as events, and one TPP never seeing another's."""
from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta, timezone

import httpx
import jwt
import orjson
import pytest
from support.events import POLL, RESOURCE_UPDATE, REVOKED, SUBSCRIPTIONS, assert_events_schema, verify_set
from support.gateway import bank_gateway, client_context
from support.openapi import assert_refused
from support.payment_data import CREDITOR, PISP
from support.receiver import Receiver, receiver_in_thread
from support.tpp import CONSENTS, CUSTOMER_PRESENT, Tpp, domestic_initiation

from gateway.payments.jws import sign_detached

pytestmark = pytest.mark.e2e
OB = "http://openbanking.org.uk/"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank, OBGW_EVENTS_ALLOW_LOOPBACK="1")
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def keys(gateway, pki) -> dict:
    with httpx.Client(verify=client_context(pki / "ca.pem")) as client:
        jwks_uri = client.get(gateway.base + "/.well-known/openid-configuration").json()["jwks_uri"]
        return {key["kid"]: key for key in client.get(jwks_uri).json()["keys"]}


@pytest.fixture
def other(gateway, pki):
    client = Tpp(gateway.base, pki, "tpp-other")
    yield client
    client.close()


def call(tpp: Tpp, method: str, path: str, token: str | None = None, body: dict | None = None) -> httpx.Response:
    token = token or tpp.client_credentials("accounts")["access_token"]
    return tpp.http.request(method, tpp.base + path, json=body, headers={"Authorization": f"Bearer {token}"})


def subscribe(tpp: Tpp, **data) -> str:
    created = call(tpp, "POST", SUBSCRIPTIONS, body={"Data": {"Version": "3.1", **data}})
    assert created.status_code == 201, created.text
    assert_events_schema(created.json(), "OBEventSubscriptionResponse1")
    return created.json()["Data"]["EventSubscriptionId"]


def unsubscribe(tpp: Tpp) -> None:
    for found in call(tpp, "GET", SUBSCRIPTIONS).json()["Data"]["EventSubscription"]:
        assert call(tpp, "DELETE", f"{SUBSCRIPTIONS}/{found['EventSubscriptionId']}").status_code == 204


def poll(tpp: Tpp, **asked) -> dict:
    answer = call(tpp, "POST", POLL, body={"returnImmediately": True, **asked})
    assert answer.status_code == 200, answer.text
    assert_events_schema(answer.json(), "OBEventPollingResponse1")
    return answer.json()


def drain(tpp: Tpp) -> None:
    """Acknowledge every event the TPP has waiting."""
    sets = poll(tpp)["sets"]
    while sets:
        sets = poll(tpp, ack=list(sets))["sets"]


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def subject(claims: dict) -> dict:
    [event] = claims["events"].values()
    return event["subject"]


def pushed(receiver: Receiver, match, count: int = 1, timeout: float = 20.0) -> list[str]:
    """The first `count` SETs (distinct jtis) the receiver got whose claims `match`, oldest first; waits for them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found: dict[str, str] = {}
        for request in list(receiver.requests):
            claims = claims_of(request.body)
            if match(claims):
                assert request.headers["content-type"] == "application/secevent+jwt"
                found.setdefault(claims["jti"], request.body)
        if len(found) >= count:
            return list(found.values())[:count]
        time.sleep(0.1)
    raise AssertionError(f"not {count} such SETs among {[claims_of(r.body) for r in receiver.requests]}")


def about(event_type: str, resource_id: str):
    return lambda claims: event_type in claims["events"] and subject(claims)[f"{OB}rid"] == resource_id


def test_a_tpp_has_one_subscription_it_reads_changes_and_deletes(gateway, tpp, other):
    unsubscribe(tpp)
    subscription_id = subscribe(tpp, EventTypes=[REVOKED])
    try:
        again = call(tpp, "POST", SUBSCRIPTIONS, body={"Data": {"Version": "3.1"}})
        assert_refused(again, 409, "UK.OBIE.Rules.ResourceAlreadyExists")
        listed = call(tpp, "GET", SUBSCRIPTIONS, tpp.client_credentials("payments")["access_token"])
        assert listed.status_code == 200 and "x-jws-signature" in listed.headers
        assert_events_schema(listed.json(), "OBEventSubscriptionsResponse1")
        assert listed.json()["Data"]["EventSubscription"] == [
            {"EventSubscriptionId": subscription_id, "Version": "3.1", "EventTypes": [REVOKED]}]

        # Another TPP neither sees it nor can change it.
        assert call(other, "GET", SUBSCRIPTIONS).json()["Data"]["EventSubscription"] == []
        change = {"Data": {"EventSubscriptionId": subscription_id, "Version": "3.1"}}
        assert_refused(call(other, "PUT", f"{SUBSCRIPTIONS}/{subscription_id}", body=change), 404,
                       "UK.OBIE.Resource.NotFound")
        assert call(other, "DELETE", f"{SUBSCRIPTIONS}/{subscription_id}").status_code == 404

        with receiver_in_thread() as receiver:
            change["Data"]["CallbackUrl"] = receiver.url
            changed = call(tpp, "PUT", f"{SUBSCRIPTIONS}/{subscription_id}",
                           tpp.client_credentials("payments")["access_token"], change)
            assert changed.status_code == 200, changed.text
            assert_events_schema(changed.json(), "OBEventSubscriptionResponse1")
            assert changed.json()["Data"] == change["Data"]
        refused = call(tpp, "PUT", f"{SUBSCRIPTIONS}/{subscription_id}",
                       body={"Data": {**change["Data"], "CallbackUrl": "https://10.0.0.7/event-notifications"}})
        assert_refused(refused, 400, "UK.OBIE.Field.Invalid")
        assert refused.json()["Errors"][0]["Path"] == "Data.CallbackUrl"
        assert call(tpp, "GET", SUBSCRIPTIONS).json()["Data"]["EventSubscription"][0]["CallbackUrl"] == \
            change["Data"]["CallbackUrl"]
    finally:
        assert call(tpp, "DELETE", f"{SUBSCRIPTIONS}/{subscription_id}").status_code == 204
    assert call(tpp, "GET", SUBSCRIPTIONS).json()["Data"]["EventSubscription"] == []
    assert call(tpp, "DELETE", f"{SUBSCRIPTIONS}/{subscription_id}").status_code == 404


def test_a_revocation_is_pushed_and_polled_as_one_set_until_acknowledged(gateway, tpp, other, keys):
    unsubscribe(tpp)
    drain(tpp)
    drain(other)
    with receiver_in_thread() as receiver:
        subscribe(tpp, CallbackUrl=receiver.url)
        try:
            token = tpp.consent_token(["ReadAccountsBasic"])
            consent_id = token["consent_id"]
            [authorised] = pushed(receiver, about(RESOURCE_UPDATE, consent_id))
            deleted = call(tpp, "DELETE", f"{CONSENTS}/{consent_id}")
            assert deleted.status_code == 204, deleted.text
            [revoked] = pushed(receiver, about(REVOKED, consent_id))
        finally:
            unsubscribe(tpp)
    claims = verify_set(revoked, keys, gateway.base, tpp.client_id)
    assert claims["sub"] == f"{gateway.base}{CONSENTS}/{consent_id}"
    assert subject(claims)[f"{OB}rty"] == "account-access-consent"
    assert subject(verify_set(authorised, keys, gateway.base, tpp.client_id))[f"{OB}rty"] == "account-access-consent"

    # The same events wait for polling: the same jti and claims, signed again as they leave.
    assert poll(other)["sets"] == {}
    polled = poll(tpp)
    assert polled["moreAvailable"] is False
    jtis = {jti: verify_set(token, keys, gateway.base, tpp.client_id) for jti, token in polled["sets"].items()}
    assert jtis[claims["jti"]] == claims
    assert jtis[claims_of(authorised)["jti"]] == claims_of(authorised)
    assert poll(tpp, maxEvents=1)["moreAvailable"] is True

    # Acknowledged, they are gone; an error reported keeps one until it is acknowledged.
    left = poll(tpp, ack=[claims["jti"]], setErrs={claims_of(authorised)["jti"]: {
        "err": "jwtAud", "description": "not for us"}})
    assert list(left["sets"]) == [claims_of(authorised)["jti"]]
    assert poll(tpp, ack=list(left["sets"]), maxEvents=0) == {"sets": {}, "moreAvailable": False}
    assert poll(tpp)["sets"] == {}

    audited = gateway.audit("--client", tpp.client_id, "--consent", consent_id)
    reasons = {(record["route"], record["reason"]) for record in audited}
    assert {("event-notification", "notify.delivered"), ("events", "notify.polled"),
            ("events", "notify.acknowledged"), ("events", "notify.set_error")} <= reasons
    assert not any(record["client_id"] == other.client_id for record in audited)


def test_a_payment_and_its_later_execution_are_resource_updates(gateway, tpp, keys):
    unsubscribe(tpp)
    drain(tpp)
    with receiver_in_thread() as receiver:
        subscribe(tpp, CallbackUrl=receiver.url, EventTypes=[RESOURCE_UPDATE])
        try:
            initiation = domestic_initiation()
            consent = tpp.payment_consent(initiation)
            assert consent.status_code == 201, consent.text
            consent_id = consent.json()["Data"]["ConsentId"]
            token = tpp.authorise_payment(consent_id)
            paid = tpp.pay(token, consent_id, initiation)
            assert paid.status_code == 201, paid.text
            payment_id = paid.json()["Data"]["DomesticPaymentId"]
            [payment] = pushed(receiver, about(RESOURCE_UPDATE, payment_id))

            # A scheduled payment: pending when made, then executed by the bank seconds later (two updates).
            scheduled_id = _scheduled_payment(tpp, seconds_ahead=6)
            made, executed = pushed(receiver, about(RESOURCE_UPDATE, scheduled_id), count=2)
        finally:
            unsubscribe(tpp)
    claims = verify_set(payment, keys, gateway.base, tpp.client_id)
    link = f"{gateway.base}{PISP}/domestic-payments/{payment_id}"
    assert claims["sub"] == link and subject(claims)[f"{OB}rlk"] == [{"version": "v3.1", "link": link}]
    assert subject(claims)[f"{OB}rty"] == "domestic-payment"
    assert tpp.get(claims["sub"].removeprefix(gateway.base), token).json()["Data"]["Status"] == \
        "AcceptedSettlementCompleted"
    later = verify_set(executed, keys, gateway.base, tpp.client_id)
    assert subject(later)[f"{OB}rty"] == "domestic-scheduled-payment"
    assert later["toe"] > verify_set(made, keys, gateway.base, tpp.client_id)["toe"]
    polled = {claims_of(token)["jti"] for token in poll(tpp)["sets"].values()}
    assert {claims["jti"], later["jti"]} <= polled
    drain(tpp)


def _scheduled_payment(tpp: Tpp, seconds_ahead: int) -> str:
    """A domestic scheduled payment due `seconds_ahead` from now, consented, authorised and made; its id."""
    when = (datetime.now(timezone.utc) + timedelta(seconds=seconds_ahead)).replace(microsecond=0).isoformat()
    initiation = {"InstructionIdentification": secrets.token_hex(8), "EndToEndIdentification": secrets.token_hex(8),
                  "RequestedExecutionDateTime": when, "InstructedAmount": {"Amount": "3.00", "Currency": "GBP"},
                  "CreditorAccount": CREDITOR}

    def post(path: str, body: dict, token: str) -> httpx.Response:
        content = orjson.dumps(body)
        return tpp.http.post(tpp.base + path, content=content, headers={
            "Authorization": f"Bearer {token}", "content-type": "application/json",
            "x-idempotency-key": secrets.token_hex(8), **CUSTOMER_PRESENT,
            "x-jws-signature": sign_detached(content, tpp.jwk, tpp.client_id)})

    cc = tpp.client_credentials("payments")["access_token"]
    consent = post(f"{PISP}/domestic-scheduled-payment-consents",
                   {"Data": {"Permission": "Create", "Initiation": initiation}, "Risk": {}}, cc)
    assert consent.status_code == 201, consent.text
    consent_id = consent.json()["Data"]["ConsentId"]
    token = tpp.authorise_payment(consent_id)["access_token"]
    paid = post(f"{PISP}/domestic-scheduled-payments", {"Data": {"ConsentId": consent_id, "Initiation": initiation},
                                                         "Risk": {}}, token)
    assert paid.status_code == 201, paid.text
    assert paid.json()["Data"]["Status"] == "InitiationPending"
    return paid.json()["Data"]["DomesticScheduledPaymentId"]


def test_an_operators_revocation_reaches_the_subscriptions_callback(gateway, tpp, keys):
    unsubscribe(tpp)
    with receiver_in_thread() as receiver:
        subscribe(tpp, CallbackUrl=receiver.url, EventTypes=[REVOKED])
        try:
            consent_id = tpp.consent_token(["ReadAccountsBasic"])["consent_id"]
            revoked = gateway.cli("consents", "revoke", consent_id)
            assert revoked.returncode == 0, revoked.stderr
            [event] = pushed(receiver, about(REVOKED, consent_id))
        finally:
            unsubscribe(tpp)
    assert not any(RESOURCE_UPDATE in claims_of(r.body)["events"] for r in receiver.requests)  # not subscribed
    assert subject(verify_set(event, keys, gateway.base, tpp.client_id))[f"{OB}rid"] == consent_id
    drain(tpp)
