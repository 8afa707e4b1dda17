"""The UK OB Events API v3.1.11 (its OpenAPI document, "Events API Specification - ASPSP Endpoints"): the event
subscription and aggregated polling resources.

    POST   /event-subscriptions                       OBEventSubscription1 → 201 OBEventSubscriptionResponse1
    GET    /event-subscriptions                       → 200 OBEventSubscriptionsResponse1 (the TPP's one, or none)
    PUT    /event-subscriptions/{EventSubscriptionId} OBEventSubscriptionResponse1 → 200 OBEventSubscriptionResponse1
    DELETE /event-subscriptions/{EventSubscriptionId} → 204
    POST   /events                                    OBEventPolling1 → 200 OBEventPollingResponse1

Each is the last stage after the client-credentials stages (`pipeline.consent_api_stages`: certificate, a
client-credentials token bound to it, rate limit, client enabled); the token's scope must be one the spec names
(`accounts`, `payments` or `fundsconfirmations`). A TPP only ever reaches its own subscription and events: every key
is the token's client id's, and another TPP's subscription id is simply not found.

- "An ASPSP must respond with a 409 error if an event-subscription exists for that TPP" (Event Subscription,
  POST); `Version` names the resources' version (this gateway serves v3.1); `EventTypes` omitted (or empty) means
  every type this gateway sends; a `CallbackUrl` must pass the SSRF rules (`events.callbacks`), or the call is 400.
  "TPP must not provide CallbackUrl, when subscribing for Aggregated Polling only": without one, events are polled.
- Polling (Aggregated Polling API Profile; RFC 8936 §2.4): `ack` drops those events for good; `setErrs` reports
  events the TPP could not process, which stay "awaiting" (the profile: "events that have not been acknowledged by
  the TPP, or have been reported as errors") until acknowledged or expired; then up to `maxEvents` (at most
  MAX_EVENTS; 0: none) of the oldest awaiting events are handed out, each a SET signed now, keyed by its `jti`;
  `moreAvailable` says whether more are awaiting. Events handed out stay until acknowledged. Without
  `returnImmediately: true` (RFC 8936: the default is a long poll) an empty answer waits up to LONG_POLL_SECONDS for
  an event; at most LONG_POLLS calls per worker wait at once (more are answered at once).
- Every event handed out, acknowledged or reported in error is audited (`notify.polled`, `notify.acknowledged`,
  `notify.set_error`, with the consent the event is about) before the answer leaves; if the audit cannot take
  them, nothing is handed out (503).

Where obgw departs from the text: message signing of the subscription requests (`x-jws-signature`, "Signed
Request") is not required (answers are signed: "Signed Response"); `maxEvents` above MAX_EVENTS is read as MAX_EVENTS.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

import orjson

from gateway.audit.record import AuditRecord
from gateway.call import STOP, Call, Flow, Stage, Upstream, required
from gateway.consents.notify import EVENT_TYPES, REASONS, claims_of
from gateway.errors import Refusal
from gateway.events.callbacks import CallbackGuard, LookupFailed
from gateway.json_body import InvalidJson, loads_request
from gateway.store.events import EventStore, Polled, Subscription
from gateway.store.redis import RedisError

__all__ = ["EVENTS", "EVENTS_API", "EVENT_SUBSCRIPTION", "EVENT_SUBSCRIPTIONS", "EventPolling", "EventSubscriptions"]

log = logging.getLogger("obgw.events")

EVENT_SUBSCRIPTIONS = "/open-banking/v3.1/event-subscriptions"
EVENT_SUBSCRIPTION = EVENT_SUBSCRIPTIONS + "/{EventSubscriptionId}"
EVENTS = "/open-banking/v3.1/events"
# The Events API's routes, declared once: path → {method: route id} (app.py wires them, the audit names them).
EVENTS_API: Mapping[str, Mapping[str, str]] = MappingProxyType({
    EVENT_SUBSCRIPTIONS: MappingProxyType({"POST": "events.subscriptions.create", "GET": "events.subscriptions.get"}),
    EVENT_SUBSCRIPTION: MappingProxyType({"PUT": "events.subscriptions.update",
                                          "DELETE": "events.subscriptions.delete"}),
    EVENTS: MappingProxyType({"POST": "events.poll"}),
})
SCOPES = ("accounts", "payments", "fundsconfirmations")  # the Events API: TPPOAuth2Security, any of them
VERSION = re.compile(r"v?3\.1(\.[0-9]{1,2})?")             # "3.1", "v3.1", "3.1.11": the resources this gateway serves
MAX_EVENTS = 100
MAX_ACKS = 1000
LONG_POLL_SECONDS = 5.0
LONG_POLL_STEP = 0.25
LONG_POLLS = 64
ROUTE = "events"  # the audit route of an event handed out or acknowledged by polling: the OB resource name
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def require_scope(call: Call) -> None:
    """The Events API's TPPOAuth2Security: a client-credentials token with any one of its scopes."""
    if not set(SCOPES) & set(str(required(call.claims, "claims").get("scope", "")).split()):
        raise Refusal("token.insufficient_scope",
                      headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{" ".join(SCOPES)}"'})


def _document(body: bytes) -> dict[str, Any]:
    try:
        document = loads_request(body)
    except InvalidJson as exc:
        raise Refusal("request.invalid_json", f"The body is not accepted: {exc}.") from None
    if not isinstance(document, dict):
        raise Refusal("request.invalid_json")
    return document


def _text(data: Mapping[str, Any], name: str, path: str, most: int, required_: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required_:
            raise Refusal("request.field_missing", f"{path} is required.", path=path)
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= most:
        raise Refusal("request.field_invalid", f"{path} must be a string of 1 to {most} characters.", path=path)
    return value


class EventSubscriptions(Stage):
    """`/event-subscriptions[/{EventSubscriptionId}]`: the TPP's one event subscription."""

    def __init__(self, store: EventStore, guard: CallbackGuard, issuer: str) -> None:
        self._store, self._guard, self._issuer = store, guard, issuer

    async def on_request(self, call: Call) -> Flow:
        require_scope(call)
        subscription_id = call.path_params.get("EventSubscriptionId")
        try:
            if subscription_id is None and call.method == "GET":
                found = await self._store.subscription(call.tpp)
                listed = [self._data(found)] if found is not None else []
                call.upstream = Upstream(200, list(_JSON), orjson.dumps({
                    "Data": {"EventSubscription": listed}, "Links": {"Self": self._issuer + EVENT_SUBSCRIPTIONS},
                    "Meta": {}}))
            elif subscription_id is None:  # POST
                asked = await self._asked(call, f"es-{uuid.uuid4()}")
                if not await self._store.create(call.tpp, asked):
                    raise Refusal("events.subscription_exists")
                call.upstream = Upstream(201, list(_JSON), self._answer(asked))
            elif call.method == "PUT":
                asked = await self._asked(call, subscription_id)
                if not await self._store.replace(call.tpp, asked):
                    raise Refusal("events.subscription_unknown", path="EventSubscriptionId")
                call.upstream = Upstream(200, list(_JSON), self._answer(asked))
            else:  # DELETE
                if not await self._store.delete(call.tpp, subscription_id):
                    raise Refusal("events.subscription_unknown", path="EventSubscriptionId")
                call.upstream = Upstream(204, [(b"cache-control", b"no-store")], b"")
        except (RedisError, OSError):
            raise Refusal("store.unavailable", headers={"Retry-After": "1"}) from None
        return STOP

    async def _asked(self, call: Call, subscription_id: str) -> Subscription:
        """The subscription the body asks for (OBEventSubscription1 to POST, OBEventSubscriptionResponse1 to PUT)."""
        document = _document(call.body)
        allowed = {"Data"} if call.method == "POST" else {"Data", "Links", "Meta"}
        unexpected = sorted(set(document) - allowed)
        if unexpected:
            raise Refusal("request.field_invalid", f"{unexpected[0]} is not a field of this request.",
                          path=unexpected[0])
        data = document.get("Data")
        if not isinstance(data, dict):
            raise Refusal("request.field_missing" if data is None else "request.field_invalid",
                          "Data must be an object.", path="Data")
        if call.method == "PUT":
            named = _text(data, "EventSubscriptionId", "Data.EventSubscriptionId", 40, required_=True)
            if named != subscription_id:
                raise Refusal("request.field_invalid", "Data.EventSubscriptionId must be the path's.",
                              path="Data.EventSubscriptionId")
        version = str(_text(data, "Version", "Data.Version", 10, required_=True))
        if not VERSION.fullmatch(version):
            raise Refusal("request.field_invalid", "Data.Version: this bank's resources are version 3.1.",
                          path="Data.Version")
        types = data.get("EventTypes", [])
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise Refusal("request.field_invalid", "Data.EventTypes must be an array of strings.",
                          path="Data.EventTypes")
        unknown = sorted(set(types) - set(EVENT_TYPES))
        if unknown:
            raise Refusal("request.field_invalid", f"Data.EventTypes: this bank sends {', '.join(EVENT_TYPES)} "
                          "only.", path="Data.EventTypes")
        callback = _text(data, "CallbackUrl", "Data.CallbackUrl", 2048)
        if callback is not None:
            try:
                problem = await self._guard.problem(callback)
            except LookupFailed:
                problem = "its host does not resolve"
            if problem is not None:
                raise Refusal("events.callback_refused", f"Data.CallbackUrl: {problem}.", path="Data.CallbackUrl")
        return Subscription(subscription_id, version, callback, tuple(dict.fromkeys(types)))

    def _data(self, subscription: Subscription) -> dict[str, Any]:
        data: dict[str, Any] = {"EventSubscriptionId": subscription.subscription_id,
                                "Version": subscription.version}
        if subscription.callback_url:
            data["CallbackUrl"] = subscription.callback_url
        if subscription.event_types:
            data["EventTypes"] = list(subscription.event_types)
        return data

    def _answer(self, subscription: Subscription) -> bytes:
        return orjson.dumps({"Data": self._data(subscription), "Meta": {},
                             "Links": {"Self": f"{self._issuer}{EVENT_SUBSCRIPTIONS}/{subscription.subscription_id}"}})


class EventPolling(Stage):
    """`POST /events`: acknowledge, report errors, and take the awaiting events as signed SETs.

    `sign(claims)` (sync, run in a thread) makes the SET (`oauth.signing_keys.signer`, typed `secevent+jwt`, as the
    pushed ones); `record` is the audit sink (`AuditChain.append`); `api_base` the start of the resources' URLs.
    """

    def __init__(self, store: EventStore, sign: Callable[[dict[str, Any]], str],
                 record: Callable[[AuditRecord], Awaitable[None]], issuer: str, api_base: str) -> None:
        self._store, self._sign, self._record = store, sign, record
        self._issuer, self._api_base = issuer, api_base
        self._waiting = asyncio.Semaphore(LONG_POLLS)

    async def on_request(self, call: Call) -> Flow:
        require_scope(call)
        most, immediately, acks, errors = self._asked(call.body)
        try:
            polled = await self._store.poll(call.tpp, most, acks, errors)
            if not polled.handed_out and most and not immediately and not self._waiting.locked():
                async with self._waiting:
                    polled = await self._long_poll(call.tpp, most, polled)
        except (RedisError, OSError):
            raise Refusal("store.unavailable", headers={"Retry-After": "1"}) from None
        handed_out = [(jti, facts, claims) for jti, facts in polled.handed_out
                      if (claims := self._claims(call.tpp, jti, facts)) is not None]
        tokens = await asyncio.to_thread(lambda: [self._sign(claims) for _, _, claims in handed_out])
        await self._audit(call, polled, [facts for _, facts, _ in handed_out])
        call.upstream = Upstream(200, list(_JSON), orjson.dumps({
            "sets": {jti: token for (jti, _, _), token in zip(handed_out, tokens, strict=True)},
            "moreAvailable": polled.remaining > len(polled.handed_out)}))
        return STOP

    @staticmethod
    def _asked(body: bytes) -> tuple[int, bool, list[str], list[str]]:
        """(most to hand out, returnImmediately, acknowledged jtis, jtis reported in error) of an OBEventPolling1."""
        document = _document(body) if body.strip() else {}
        unexpected = sorted(set(document) - {"maxEvents", "returnImmediately", "ack", "setErrs"})
        if unexpected:
            raise Refusal("request.field_invalid", f"{unexpected[0]} is not a field of OBEventPolling1.",
                          path=unexpected[0])
        most = document.get("maxEvents", MAX_EVENTS)
        if isinstance(most, bool) or not isinstance(most, int) or most < 0:
            raise Refusal("request.field_invalid", "maxEvents must be a whole number, 0 or more.", path="maxEvents")
        immediately = document.get("returnImmediately", False)
        if not isinstance(immediately, bool):
            raise Refusal("request.field_invalid", "returnImmediately must be true or false.",
                          path="returnImmediately")
        acks = document.get("ack", [])
        if not isinstance(acks, list) or len(acks) > MAX_ACKS or not all(
                isinstance(jti, str) and 1 <= len(jti) <= 128 for jti in acks):
            raise Refusal("request.field_invalid", f"ack must be at most {MAX_ACKS} jti values of 1 to 128 "
                          "characters.", path="ack")
        errors = document.get("setErrs", {})
        if not isinstance(errors, dict) or len(errors) > MAX_ACKS or not all(
                1 <= len(jti) <= 128 and isinstance(error, dict) and set(error) <= {"err", "description"}
                and isinstance(error.get("err"), str) and 1 <= len(error["err"]) <= 40
                and isinstance(error.get("description"), str) and 1 <= len(error["description"]) <= 256
                for jti, error in errors.items()):
            raise Refusal("request.field_invalid", "setErrs must map jti values to {err, description}.",
                          path="setErrs")
        return min(most, MAX_EVENTS), immediately, acks, [jti for jti in errors if jti not in acks]

    async def _long_poll(self, client_id: str, most: int, polled: Polled) -> Polled:
        """RFC 8936 §2.4: a long poll; what the first look found (acknowledgements) stays in the answer's audit."""
        deadline = time.monotonic() + LONG_POLL_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(LONG_POLL_STEP)
            later = await self._store.poll(client_id, most)
            if later.handed_out:
                return Polled(polled.acknowledged, polled.reported, later.handed_out, later.remaining)
        return polled

    def _claims(self, client_id: str, jti: str, facts: dict[str, Any]) -> dict[str, Any] | None:
        claims = claims_of(facts, self._issuer, self._api_base)
        if claims is None or claims["aud"] != client_id or claims["jti"] != jti:
            log.error("events: kept event %s of %s is not one to hand out; left to expire", jti, client_id)
            return None
        return claims

    async def _audit(self, call: Call, polled: Polled, handed_out: list[dict[str, Any]]) -> None:
        """One record per event acknowledged, reported or handed out, stored before the answer leaves."""
        latency = round((time.perf_counter() - call.started) * 1000, 3)

        def record(facts: dict[str, Any], reason: str) -> AuditRecord:
            consent_id = facts.get("consent_id")
            return AuditRecord(ts=call.ts, interaction_id=call.interaction_id, method="POST", route=ROUTE,
                               status=200, decision=REASONS[reason], reason=reason, latency_ms=latency,
                               client_id=call.tpp, consent_id=consent_id if isinstance(consent_id, str) else None)
        records = [*(record(facts, "notify.acknowledged") for facts in polled.acknowledged),
                   *(record(facts, "notify.set_error") for facts in polled.reported),
                   *(record(facts, "notify.polled") for facts in handed_out)]
        try:
            await asyncio.gather(*(self._record(each) for each in records))
        except Exception:
            log.exception("events: the audit could not take the poll's records")
            raise Refusal("audit.unavailable", headers={"Retry-After": "1"}) from None
