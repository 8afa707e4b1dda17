"""ConsentStore: consent records in Redis, one hash each, with status changes as atomic compare-and-set.

The hash carries the fields the Admit script reads on every call (`client_id`, `status`, `expires_ms`,
`customer_id`, `grant_id`, `accounts`, `permissions`, `window`), next to the whole record as JSON. A customer's
consents are indexed by customer (the dashboard), written when the consent is authorised.
Callers: `consents.api`, `oauth.server` (PAR, tokens), `web.authorize`, `web.dashboard`, `cli.consents`.
"""
from __future__ import annotations

import orjson

from gateway.consents.model import payment_digest
from gateway.store import keys
from gateway.store.redis import sync_script


class ConsentStore:
    def __init__(self, redis) -> None:
        self._redis = redis
        self._transition = sync_script(redis, "consent_transition")

    def create(self, record: dict, expires_ms: int | None) -> None:
        consent_id, client_id = record["consent_id"], record["client_id"]
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.consent(client_id, consent_id), mapping=_fields(record, expires_ms))
        pipe.set(keys.consent_owner(consent_id), client_id)
        pipe.execute()

    def get(self, client_id: str, consent_id: str) -> dict | None:
        raw = self._redis.hget(keys.consent(client_id, consent_id), "record")
        return orjson.loads(raw) if raw else None

    def index_for_customer(self, customer_id: str, client_id: str, consent_id: str) -> None:
        self._redis.sadd(keys.customer_consents(customer_id), f"{client_id} {consent_id}")

    def of_customer(self, customer_id: str) -> list[dict]:
        """Every consent the customer has authorised, newest first."""
        members = sorted(m.decode() for m in self._redis.smembers(keys.customer_consents(customer_id)))
        records = [self.get(*member.split(" ", 1)) for member in members]
        return sorted((r for r in records if r), key=lambda r: r["created"], reverse=True)

    def all(self):
        """Every consent (for operators: `obgw consents list`); a SCAN over the owner index, never on a request."""
        for key in self._redis.scan_iter(match=keys.consent_owner("*"), count=1000):
            consent_id = key.decode().rsplit(":", 1)[1]
            client_id = self.owner(consent_id)
            record = self.get(client_id, consent_id) if client_id else None
            if record is not None:
                yield record

    def owner(self, consent_id: str) -> str | None:
        raw = self._redis.get(keys.consent_owner(consent_id))
        return raw.decode() if raw else None

    def transition(self, record: dict, expected: list[str], expires_ms: int | None) -> str | None:
        """Store `record` only if the stored status is one of `expected`: None if stored, else the status found
        ("missing" when there is no such consent)."""
        found = self._transition(keys=[keys.consent(record["client_id"], record["consent_id"])],
                                 args=[",".join(expected), *_flat(_fields(record, expires_ms))])
        if found == b"":
            return None
        return found.decode() if found is not None else "missing"


def _fields(record: dict, expires_ms: int | None) -> dict:
    return {
        "client_id": record["client_id"], "status": record["status"],
        "expires_ms": "" if expires_ms is None else str(expires_ms),
        "customer_id": record.get("customer_id") or "", "grant_id": record.get("grant_id") or "",
        "accounts": orjson.dumps(record.get("accounts") or []),
        "permissions": orjson.dumps(record.get("permissions") or []),
        "window": orjson.dumps([record.get("transaction_from"), record.get("transaction_to")]),
        "payment_digest": payment_digest(record.get("initiation"), record.get("risk")),
        "record": orjson.dumps(record),
    }


def _flat(fields: dict) -> list:
    return [item for pair in fields.items() for item in pair]
