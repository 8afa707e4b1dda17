"""Checks of the Events API's shapes against the vendored UK OB v3.1.11 `events-openapi.json` and
`event-notifications-openapi.json`, and a TPP's side of it (subscribe, poll, verify a SET with the gateway's JWKS).

    assert_events_schema(body, "OBEventSubscriptionResponse1")
    assert_notification(claims)   # a SET's claims: OBEventNotification1, or its v3.1.10 successor OBEventNotification2

The event-notifications document defines OBEventNotification1, whose `events` holds a resource-update only. The
revocation event is OBEventNotification2's (read-write-api-docs-pub, docs/v3.1.10/.../events.md: `events` may hold
resource-update, consent-authorization-revoked and account-access-consent-linked-account-update, each with an
OBEventSubject1 `subject`); that schema is not published as OpenAPI, so it is built here from the vendored components
(OBEventNotification1's claims, OBEventSubject1, OBEventResourceUpdate1), without changing the vendored files.
"""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import jwt
from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

SPECS = Path(__file__).resolve().parents[2] / "gateway" / "specs" / "ob-uk" / "v3.1.11"
EVENTS = "urn:ob:events"
NOTIFICATIONS = "urn:ob:event-notifications"
REVOKED = "urn:uk:org:openbanking:events:consent-authorization-revoked"
RESOURCE_UPDATE = "urn:uk:org:openbanking:events:resource-update"
LINKED_ACCOUNT = "urn:uk:org:openbanking:events:account-access-consent-linked-account-update"
SUBSCRIPTIONS = "/open-banking/v3.1/event-subscriptions"
POLL = "/open-banking/v3.1/events"


@functools.cache
def _documents() -> dict[str, dict]:
    return {EVENTS: json.loads((SPECS / "events-openapi.json").read_text()),
            NOTIFICATIONS: json.loads((SPECS / "event-notifications-openapi.json").read_text())}


@functools.cache
def _registry() -> Registry:
    registry: Registry = Registry()
    for uri, document in _documents().items():
        registry = registry.with_resource(uri, DRAFT4.create_resource(document))
    return registry


def _validate(body: object, schema: dict) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in Draft4Validator(schema, registry=_registry()).iter_errors(body)]
    assert not errors, "\n".join(errors[:10])


def assert_events_schema(body: object, schema: str) -> None:
    """`body` conforms to `schema` of events-openapi.json."""
    _validate(body, {"$ref": f"{EVENTS}#/components/schemas/{schema}"})


@functools.cache
def notification2() -> dict:
    """OBEventNotification2, from the vendored OBEventNotification1 and the event classes' vendored components."""
    schema = copy.deepcopy(_documents()[NOTIFICATIONS]["components"]["schemas"]["OBEventNotification1"])
    subject = {"$ref": f"{NOTIFICATIONS}#/components/schemas/OBEventSubject1"}
    schema["properties"]["events"] = {
        "type": "object", "minProperties": 1, "additionalProperties": False,
        "properties": {
            RESOURCE_UPDATE: {"$ref": f"{NOTIFICATIONS}#/components/schemas/OBEventResourceUpdate1"},
            REVOKED: {"type": "object", "additionalProperties": False,
                      "properties": {"reason": {"type": "string"}, "subject": subject}},
            LINKED_ACCOUNT: {"type": "object", "additionalProperties": False, "required": ["subject"],
                             "properties": {"reason": {"type": "string"}, "subject": subject}},
        }}
    return schema


def assert_notification(claims: dict) -> None:
    """A SET's claims are an OBEventNotification2; a resource-update alone also an OBEventNotification1."""
    _validate(claims, notification2())
    if set(claims["events"]) == {RESOURCE_UPDATE}:
        _validate(claims, {"$ref": f"{NOTIFICATIONS}#/components/schemas/OBEventNotification1"})


def verify_set(token: str, keys: dict, issuer: str, audience: str) -> dict:
    """The claims of a SET the gateway signed (ES256, a kid of its JWKS, typ secevent+jwt), checked as a TPP would."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "secevent+jwt" and header["alg"] == "ES256", header
    key = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(keys[header["kid"]]))
    claims = jwt.decode(token, key, algorithms=["ES256"], audience=audience, issuer=issuer,
                        options={"require": ["iss", "iat", "jti", "aud", "sub", "txn", "toe"]})
    assert_notification(claims)
    return claims
