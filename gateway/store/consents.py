"""ConsentStore: consent records in Redis, one hash each, with status changes as atomic compare-and-set.

The hash carries the fields the Admit script reads on every call (`client_id`, `status`, `expires_ms`,
`customer_id`, `grant_id`, `accounts`, `permissions`, `window`, `payment_digest`, `instructed_amount`), next to the
whole record as JSON (and a file-payment consent's file). A customer's consents are indexed by customer (the
dashboard), written when the consent is authorised. The customer id is kept only sealed, and the index named only by
the customer's audit pseudonym (audit/customers.py): Redis alone never joins a consent id, and so the audit log, to a
customer.
Callers: `consents.api`, `oauth.server` (PAR, tokens), `web.authorize`, `web.dashboard`, `cli.consents`. The
`a...` methods are the async twins of the ones so named, on the worker's async client (`live`): the request path
(`consents.api`, `payments.consume`) uses them, so none of its Redis calls waits for a thread; the sync ones stay
for Authlib's threads and the CLI. Nothing is cached: every read is live (a revoked consent holds at once).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, TypedDict, TypeVar, cast

import orjson
from redis import Redis
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline

from gateway.crypto import is_sealed
from gateway.store import names
from gateway.store.redis import WorkerRedis, async_script, sync_script, text

P = TypeVar("P", Pipeline, AsyncPipeline)
FILE_FIELD = "file"  # a file-payment consent's file, in its consent's hash (so it lives and lapses with it)


class CustomerIds(Protocol):
    """How the customer id is kept (audit/customers.py holds the key): sealed per consent, the index by pseudonym."""

    def seal(self, consent_id: str, customer_id: str) -> str: ...
    def reveal(self, consent_id: str, stored: str) -> str: ...
    def pseudonym(self, customer_id: str) -> str: ...


class _ScriptCall(TypedDict):
    keys: list[str]
    args: list[str | bytes]


class ConsentStore:
    def __init__(self, redis: Redis, customers: CustomerIds | None = None, live: WorkerRedis | None = None) -> None:
        """`customers` seals the customer id a consent stores (and opens it as a consent is read) and names the
        customer index. Without it the store reads consents with the id sealed, and writes only those that name no
        customer, or name one sealed already. `live` is the worker's async client (store.redis.async_client), for
        the `a...` methods."""
        self._redis = redis
        self.customers = customers
        self._transition = sync_script(redis, "consent_transition")
        self._live = live
        self._live_transition = async_script(live, "consent_transition") if live is not None else None

    def create(self, record: dict[str, Any], expires_ms: int | None, lapse_seconds: int) -> None:
        """A new consent, gone from Redis after `lapse_seconds` unless `keep` is called (it is authorised)."""
        self._creating(self._redis.pipeline(transaction=False), record, expires_ms, lapse_seconds).execute()

    async def acreate(self, record: dict[str, Any], expires_ms: int | None, lapse_seconds: int) -> None:
        await self._creating(self._async.pipeline(transaction=False), record, expires_ms, lapse_seconds).execute()

    def _creating(self, pipe: P, record: dict[str, Any], expires_ms: int | None, lapse_seconds: int) -> P:
        """`pipe` (sync or async) with the commands that create a consent queued."""
        consent_id, client_id = record["consent_id"], record["client_id"]
        fields = self._fields(record, expires_ms)
        # redis-py types `mapping` as Mapping[FieldT, ...], which no dict[str, ...] is (a Mapping's keys are invariant).
        pipe.hset(names.consent(client_id, consent_id), mapping=fields)  # type: ignore[arg-type]
        pipe.expire(names.consent(client_id, consent_id), lapse_seconds)
        pipe.set(names.consent_owner(consent_id), client_id, ex=lapse_seconds)
        return pipe

    def keep(self, client_id: str, consent_id: str) -> None:
        """The consent stays in Redis for good (authorised: its tokens, payment replays, the customer's dashboard)."""
        _keeping(self._redis.pipeline(transaction=False), client_id, consent_id).execute()

    async def akeep(self, client_id: str, consent_id: str) -> None:
        await _keeping(self._async.pipeline(transaction=False), client_id, consent_id).execute()

    def get(self, client_id: str, consent_id: str) -> dict[str, Any] | None:
        raw = self._redis.hget(names.consent(client_id, consent_id), "record")
        return self._opened(orjson.loads(raw)) if raw else None

    async def aget(self, client_id: str, consent_id: str) -> dict[str, Any] | None:
        raw = await self._async.hget(names.consent(client_id, consent_id), "record")
        return self._opened(orjson.loads(raw)) if raw else None

    def index_for_customer(self, customer_id: str, client_id: str, consent_id: str) -> None:
        pseudonym = self.customer_ids().pseudonym(customer_id)
        self._redis.sadd(names.subject_consents(pseudonym), f"{client_id} {consent_id}")

    def of_customer(self, customer_id: str) -> list[dict[str, Any]]:
        """Every consent the customer has authorised, newest first (also from the index an older version named by
        the customer id, until `consents.legacy` has merged it)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.smembers(names.subject_consents(self.customer_ids().pseudonym(customer_id)))
        pipe.smembers(names.customer_consents(customer_id))
        members = sorted({m.decode() for found in pipe.execute() for m in found})
        records = [self.get(*member.split(" ", 1)) for member in members]
        return sorted((r for r in records if r), key=lambda r: r["created"], reverse=True)

    def all(self) -> Iterator[dict[str, Any]]:
        """Every consent (for operators: `obgw consents list`); a SCAN over the owner index, never on a request."""
        for client_id, consent_id in self.ids():
            record = self.get(client_id, consent_id)
            if record is not None:
                yield record

    def ids(self) -> Iterator[tuple[str, str]]:
        """(client id, consent id) of every consent, from the owner index (a SCAN)."""
        for key in self._redis.scan_iter(match=names.consent_owner("*"), count=1000):
            consent_id = key.decode().rsplit(":", 1)[1]
            client_id = self.owner(consent_id)
            if client_id:
                yield client_id, consent_id

    def owner(self, consent_id: str) -> str | None:
        raw = self._redis.get(names.consent_owner(consent_id))
        return text(raw) if raw else None

    def transition(self, record: dict[str, Any], expected: list[str], expires_ms: int | None) -> str | None:
        """Store `record` only if the stored status is one of `expected`: None if stored, else the status found
        ("missing" when there is no such consent)."""
        return _found(self._transition(**self._transition_args(record, expected, expires_ms)))

    async def atransition(self, record: dict[str, Any], expected: list[str], expires_ms: int | None,
                          file: bytes | None = None) -> str | None:
        """`transition`; with `file`, a file-payment consent's file is stored in the same step."""
        if self._live_transition is None:
            raise RuntimeError("the consent store was built without an async client")
        return _found(await self._live_transition(**self._transition_args(record, expected, expires_ms, file)))

    async def afile(self, client_id: str, consent_id: str) -> bytes | None:
        """A file-payment consent's file, as uploaded (None: none yet)."""
        return cast(bytes | None, await self._async.hget(names.consent(client_id, consent_id), FILE_FIELD))

    def _transition_args(self, record: dict[str, Any], expected: list[str], expires_ms: int | None,
                         file: bytes | None = None) -> _ScriptCall:
        fields = self._fields(record, expires_ms) | ({FILE_FIELD: file} if file is not None else {})
        return {"keys": [names.consent(record["client_id"], record["consent_id"])],
                "args": [",".join(expected), *_flat(fields)]}

    @property
    def _async(self) -> WorkerRedis:
        if self._live is None:
            raise RuntimeError("the consent store was built without an async client")
        return self._live

    def customer_ids(self) -> CustomerIds:
        """`customers`, which sealing, revealing and indexing a customer id need."""
        if self.customers is None:
            raise RuntimeError("the consent store names a customer only with the audit pseudonym key (audit.key)")
        return self.customers

    def _opened(self, record: dict[str, Any]) -> dict[str, Any]:
        customer_id = record.get("customer_id")
        if customer_id and self.customers is not None:
            record["customer_id"] = self.customers.reveal(record["consent_id"], customer_id)
        return record

    def _fields(self, record: dict[str, Any], expires_ms: int | None) -> dict[str, str | bytes]:
        """The hash to store, the customer id sealed (bound to the consent id)."""
        customer_id = record.get("customer_id")
        if customer_id and not is_sealed(customer_id):
            record = {**record, "customer_id": self.customer_ids().seal(record["consent_id"], customer_id)}
        return _fields(record, expires_ms)


def _fields(record: dict[str, Any], expires_ms: int | None) -> dict[str, str | bytes]:
    return {
        "client_id": record["client_id"], "status": record["status"],
        "expires_ms": "" if expires_ms is None else str(expires_ms),
        "customer_id": record.get("customer_id") or "", "grant_id": record.get("grant_id") or "",
        "accounts": orjson.dumps(record.get("accounts") or []),
        "permissions": orjson.dumps(record.get("permissions") or []),
        "window": orjson.dumps([record.get("transaction_from"), record.get("transaction_to")]),
        "payment_digest": record.get("payment_digest") or "",  # consents.model.to_record: what a payment repeats
        "instructed_amount": record.get("instructed_amount") or "",  # ... and what its funds check asks the bank
        "record": orjson.dumps(record),
    }


def _flat(fields: dict[str, str | bytes]) -> list[str | bytes]:
    return [item for pair in fields.items() for item in pair]


def _found(answer: bytes | None) -> str | None:
    """consent_transition.lua's answer: None if stored, else the status found ("missing": no such consent)."""
    if answer == b"":
        return None
    return answer.decode() if answer is not None else "missing"


def _keeping(pipe: P, client_id: str, consent_id: str) -> P:
    """`pipe` (sync or async) with the commands that keep a consent for good queued."""
    pipe.persist(names.consent(client_id, consent_id))
    pipe.persist(names.consent_owner(consent_id))
    return pipe
