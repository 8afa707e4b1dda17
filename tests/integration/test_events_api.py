"""The Events API's resources (events/api.py) in process, against a real Redis: the subscription's answers in their
UK OB schemas, its rules (one per TPP, the version, the event types, the CallbackUrl's SSRF rules - a loopback one
refused unless the operator allows it), the scopes, and polling: a long poll, signed SETs, the audit of each event
handed out or acknowledged, and nothing handed out when the audit cannot take it."""
from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

import jwt
import orjson
import pytest
from support.events import POLL, REVOKED, SUBSCRIPTIONS, assert_events_schema, assert_notification

from gateway.call import Call
from gateway.consents.notify import SET_TYPE, resource_entry
from gateway.errors import Refusal
from gateway.events import api
from gateway.events.api import EVENT_SUBSCRIPTION, EventPolling, EventSubscriptions
from gateway.events.callbacks import CallbackGuard
from gateway.oauth.signing_keys import KeyEncryptionKey, KeyRing, new_key_record, signer
from gateway.store.events import EventStore, Publisher
from gateway.store.redis import async_client

pytestmark = pytest.mark.timeout(30)
ISSUER = "https://obgw.test:8443"
KEK = KeyEncryptionKey(bytes(32))
KID, RECORD = new_key_record(KEK)
RING = KeyRing({KID: RECORD}, overlap=60, kek=KEK)
LOOPBACK = "http://127.0.0.1:9/event-notifications"
WHEN = datetime(2026, 11, 23, tzinfo=timezone.utc)


def _call(method: str, path: str, body: object = None, client_id: str = "tpp-demo", scope: str = "accounts",
          **params: str) -> Call:
    call = Call(interaction_id=str(uuid.uuid4()), ts=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                started=time.perf_counter(), method=method, path=path)
    call.client_id, call.claims, call.path_params = client_id, {"scope": scope, "client_id": client_id}, params
    call.body = b"" if body is None else orjson.dumps(body)
    return call


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.records, self.fail = [], fail

    async def __call__(self, record) -> None:
        if self.fail:
            raise OSError("the audit is away")
        self.records.append(record)


def _run(redis_url: str, scenario, allow_loopback: bool = False, sink: Sink | None = None):
    async def main():
        client = async_client(redis_url)
        store = EventStore(client)
        try:
            return await scenario(EventSubscriptions(store, CallbackGuard(allow_loopback), ISSUER),
                                  EventPolling(store, signer(lambda: RING, SET_TYPE), sink or Sink(), ISSUER, ISSUER),
                                  store)
        finally:
            await client.aclose()
    return asyncio.run(main())


async def _answer(stage, call: Call) -> tuple[int, dict | None]:
    await stage.on_request(call)
    return call.answer.status, orjson.loads(call.answer.body) if call.answer.body else None


async def _refused(stage, call: Call) -> Refusal:
    with pytest.raises(Refusal) as refused:
        await stage.on_request(call)
    return refused.value


def test_without_the_operators_flag_a_loopback_callback_is_refused_and_nothing_is_kept(redis_url):
    async def scenario(subscriptions, _, store):
        refusal = await _refused(subscriptions, _call("POST", SUBSCRIPTIONS, {"Data": {
            "Version": "3.1", "CallbackUrl": LOOPBACK}}))
        assert (refusal.reason, refusal.status, refusal.path) == ("events.callback_refused", 400, "Data.CallbackUrl")
        assert "127.0.0.1" not in refusal.message  # the TPP is told why, not what its host resolved to
        assert await store.subscription("tpp-demo") is None
    _run(redis_url, scenario)

    async def allowed(subscriptions, _, store):
        status, body = await _answer(subscriptions, _call("POST", SUBSCRIPTIONS, {"Data": {
            "Version": "3.1", "CallbackUrl": LOOPBACK}}))
        assert status == 201 and body["Data"]["CallbackUrl"] == LOOPBACK
    _run(redis_url, allowed, allow_loopback=True)


def test_the_subscription_answers_are_the_uk_ob_schemas(redis_url):
    async def scenario(subscriptions, _, store):
        status, created = await _answer(subscriptions, _call("POST", SUBSCRIPTIONS, {"Data": {
            "Version": "v3.1", "EventTypes": [REVOKED, REVOKED]}}, scope="fundsconfirmations"))
        assert status == 201
        assert_events_schema(created, "OBEventSubscriptionResponse1")
        subscription_id = created["Data"]["EventSubscriptionId"]
        assert created["Data"]["EventTypes"] == [REVOKED]
        assert created["Links"]["Self"] == f"{ISSUER}{SUBSCRIPTIONS}/{subscription_id}"
        status, listed = await _answer(subscriptions, _call("GET", SUBSCRIPTIONS))
        assert status == 200 and listed["Data"]["EventSubscription"] == [created["Data"]]
        assert_events_schema(listed, "OBEventSubscriptionsResponse1")
        status, changed = await _answer(subscriptions, _call(
            "PUT", EVENT_SUBSCRIPTION, {**created, "Data": {"EventSubscriptionId": subscription_id,
                                                              "Version": "3.1.11"}},
            EventSubscriptionId=subscription_id))
        assert status == 200 and changed["Data"] == {"EventSubscriptionId": subscription_id, "Version": "3.1.11"}
        assert_events_schema(changed, "OBEventSubscriptionResponse1")
        refusal = await _refused(subscriptions, _call("POST", SUBSCRIPTIONS, {"Data": {"Version": "3.1"}}))
        assert (refusal.status, refusal.entry.code) == (409, "UK.OBIE.Rules.ResourceAlreadyExists")
        assert await _answer(subscriptions, _call("DELETE", EVENT_SUBSCRIPTION,
                                                  EventSubscriptionId=subscription_id)) == (204, None)
        status, listed = await _answer(subscriptions, _call("GET", SUBSCRIPTIONS))
        assert listed["Data"]["EventSubscription"] == []
        assert_events_schema(listed, "OBEventSubscriptionsResponse1")
    _run(redis_url, scenario)


@pytest.mark.parametrize("method, body, reason, path", [
    ("POST", {"Data": {"Version": "3.1"}, "Risk": {}}, "request.field_invalid", "Risk"),
    ("POST", {"data": {"Version": "3.1"}}, "request.field_invalid", "data"),
    ("POST", {}, "request.field_missing", "Data"),
    ("POST", {"Data": {}}, "request.field_missing", "Data.Version"),
    ("POST", {"Data": {"Version": "4.0"}}, "request.field_invalid", "Data.Version"),
    ("POST", {"Data": {"Version": "3.1.11.1.1.1"}}, "request.field_invalid", "Data.Version"),
    ("POST", {"Data": {"Version": "3.1", "EventTypes": "all"}}, "request.field_invalid", "Data.EventTypes"),
    ("POST", {"Data": {"Version": "3.1", "EventTypes": ["urn:uk:org:openbanking:events:account-access-consent-"
                                                         "linked-account-update"]}},
     "request.field_invalid", "Data.EventTypes"),
    ("POST", {"Data": {"Version": "3.1", "CallbackUrl": 7}}, "request.field_invalid", "Data.CallbackUrl"),
    ("POST", {"Data": {"Version": "3.1", "CallbackUrl": "https://10.1.1.1/cb"}}, "events.callback_refused",
     "Data.CallbackUrl"),
    ("PUT", {"Data": {"Version": "3.1"}}, "request.field_missing", "Data.EventSubscriptionId"),
    ("PUT", {"Data": {"Version": "3.1", "EventSubscriptionId": "es-other"}}, "request.field_invalid",
     "Data.EventSubscriptionId"),
])
def test_a_subscription_the_rules_do_not_allow_is_refused_naming_the_field(redis_url, method, body, reason, path):
    async def scenario(subscriptions, _, store):
        call = _call(method, SUBSCRIPTIONS if method == "POST" else EVENT_SUBSCRIPTION, body,
                     **({} if method == "POST" else {"EventSubscriptionId": "es-1"}))
        refusal = await _refused(subscriptions, call)
        assert (refusal.reason, refusal.path) == (reason, path)
        assert await store.subscription("tpp-demo") is None
    _run(redis_url, scenario)


@pytest.mark.parametrize("scope", ["openid", "accounts:read", ""])
def test_a_token_without_one_of_the_apis_scopes_is_refused(redis_url, scope):
    async def scenario(subscriptions, polling, _):
        for stage, call in ((subscriptions, _call("GET", SUBSCRIPTIONS, scope=scope)),
                            (polling, _call("POST", POLL, {}, scope=scope))):
            refusal = await _refused(stage, call)
            assert (refusal.reason, refusal.status) == ("token.insufficient_scope", 403)
    _run(redis_url, scenario)


def _publish(redis_client, client_id: str = "tpp-demo") -> dict:
    entry = resource_entry(client_id, "pdc-7", "dp-7", "domestic-payment",
                           "/open-banking/v3.1/pisp/domestic-payments/dp-7", WHEN)
    Publisher(redis_client)(entry)
    return entry


def test_a_poll_hands_out_signed_sets_and_audits_each_event(redis_url, redis_client):
    entry, sink = _publish(redis_client), Sink()

    async def scenario(_, polling, __):
        status, polled = await _answer(polling, _call("POST", POLL, {"returnImmediately": True}))
        assert_events_schema(polled, "OBEventPollingResponse1")
        [(jti, token)] = polled["sets"].items()
        claims = jwt.decode(token, RING.verification_key(KID), algorithms=["ES256"], audience="tpp-demo",
                            issuer=ISSUER)
        assert_notification(claims)
        assert (jti, claims["jti"], polled["moreAvailable"]) == (entry["jti"], entry["jti"], False)
        status, after = await _answer(polling, _call("POST", POLL, {"ack": [jti], "maxEvents": 0}))
        assert after == {"sets": {}, "moreAvailable": False}
        status, other = await _answer(polling, _call("POST", POLL, {"returnImmediately": True},
                                                     client_id="tpp-other"))
        assert other == {"sets": {}, "moreAvailable": False}
    _run(redis_url, scenario, sink=sink)
    assert [(r.reason, r.decision, r.client_id, r.consent_id, r.route) for r in sink.records] == [
        ("notify.polled", "allow", "tpp-demo", "pdc-7", "events"),
        ("notify.acknowledged", "allow", "tpp-demo", "pdc-7", "events")]
    assert "dp-7" not in repr([r.fields() for r in sink.records])  # ids of the consent only, no resource link


def test_a_long_poll_answers_as_soon_as_an_event_comes(redis_url, redis_client, monkeypatch):
    async def scenario(_, polling, __):
        started = time.monotonic()
        waiting = asyncio.create_task(_answer(polling, _call("POST", POLL, {})))
        await asyncio.sleep(0.6)
        assert not waiting.done()
        entry = await asyncio.to_thread(_publish, redis_client)
        status, polled = await waiting
        assert list(polled["sets"]) == [entry["jti"]] and time.monotonic() - started < api.LONG_POLL_SECONDS
        empty = time.monotonic()
        status, none = await _answer(polling, _call("POST", POLL, {"returnImmediately": True}, client_id="tpp-x"))
        assert none["sets"] == {} and time.monotonic() - empty < 0.5
    _run(redis_url, scenario)

    monkeypatch.setattr(api, "LONG_POLL_SECONDS", 0.5)

    async def bounded(_, polling, __):
        started = time.monotonic()
        status, polled = await _answer(polling, _call("POST", POLL, {}, client_id="tpp-quiet"))
        assert polled == {"sets": {}, "moreAvailable": False} and 0.4 < time.monotonic() - started < 2
    _run(redis_url, bounded)


def test_nothing_is_handed_out_when_the_audit_cannot_take_it(redis_url, redis_client):
    entry = _publish(redis_client)

    async def scenario(_, polling, store):
        refusal = await _refused(polling, _call("POST", POLL, {"returnImmediately": True}))
        assert (refusal.reason, refusal.status) == ("audit.unavailable", 503)
        assert [jti for jti, _ in (await store.poll("tpp-demo", 10)).handed_out] == [entry["jti"]]
    _run(redis_url, scenario, sink=Sink(fail=True))
