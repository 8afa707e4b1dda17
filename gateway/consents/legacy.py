"""What versions before issue 14 item 5 stored with the customer id in clear, brought up to date once at start.

They kept the bank's customer id in clear next to consent ids: in each consent, in the name of the customer's
consent index, and in authorization-code and refresh-token records. `obgw serve` calls `seal_customer_ids` before
its workers start; the read paths accept the old forms meanwhile (ConsentStore, audit/customers.py), so nothing
breaks if a record is missed. Idempotent: a second run finds nothing to change.
"""
from __future__ import annotations

import logging

import orjson

from gateway.audit.customers import CustomerIds, is_sealed
from gateway.consents.model import expires_ms, from_record, payment_digest
from gateway.settings import Settings
from gateway.store import names
from gateway.store.consents import ConsentStore
from gateway.store.redis import RedisError, sync_client

log = logging.getLogger("obgw")


def seal_at_start(settings: Settings) -> None:
    """`seal_customer_ids` on the gateway's Redis; if Redis cannot be reached yet, the next start does it."""
    client = sync_client(settings.redis)
    try:
        changed = seal_customer_ids(client, CustomerIds.from_file(settings.audit_key_file))
    except (RedisError, OSError) as exc:
        log.warning("customer ids stored in clear by an older version were not sealed (%s: %s); the next start "
                    "tries again", type(exc).__name__, exc)
        return
    finally:
        client.close()
    if changed:
        log.warning("sealed the customer ids an older version stored in clear: %d keys changed", changed)


def seal_customer_ids(redis, customers: CustomerIds) -> int:
    """Seal every consent's customer id, rename the customer indexes to pseudonyms, drop `customer_id` from code and
    refresh-token records (nothing reads it). Returns how many keys were changed."""
    store = ConsentStore(redis, customers)
    changed = 0
    for client_id, consent_id in store.ids():
        stored = redis.hget(names.consent(client_id, consent_id), "customer_id")
        record = store.get(client_id, consent_id) if stored and not is_sealed(stored.decode()) else None
        if record is not None:
            # A compare-and-set on the stored status: a consent changed meanwhile was sealed by that change.
            digest = payment_digest(record.get("initiation"), record.get("risk"))  # the hash field, as before
            store.transition(record | {"payment_digest": digest}, [record["status"]], expires_ms(from_record(record)))
            changed += 1
    legacy = names.customer_consents("")
    for key in list(redis.scan_iter(match=legacy + "*", count=1000)):
        members = redis.smembers(key)
        if members:  # moved member by member: one added meanwhile stays (and is read) until the next start
            redis.sadd(names.subject_consents(customers.pseudonym(key.decode()[len(legacy):])), *members)
            redis.srem(key, *members)
        changed += 1
    for pattern in (names.authorization_code("*"), names.refresh_token("*", "*")):
        for key in redis.scan_iter(match=pattern, count=1000):
            raw = redis.get(key)
            record = orjson.loads(raw) if raw else None
            if isinstance(record, dict) and "customer_id" in record:
                del record["customer_id"]
                redis.set(key, orjson.dumps(record), keepttl=True, xx=True)  # never brings back a code taken since
                changed += 1
    return changed
