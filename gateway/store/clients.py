"""ClientStore: the TPP registry in Redis, one JSON document per client (survives restarts with the AOF).

Next to the documents: the software of every disabled or deleted client (RFC 7591 registration refuses it until an
operator enables the client again), the software statements used (each registers once), and the per-TPP rate limit
the authorization server charges pushed authorization requests to.

Callers: `oauth.server` (query_client, in Authlib's thread), `oauth.registration` (DCR), `oauth.routes` (PAR),
`cli.clients`, `cli.demo`; on the request path, `payments.signature` reads a client with `aget`, the async twin of
`get` on the worker's async client (`live`), so no Redis call of a payment waits for a thread.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

import orjson
from redis import Redis

from gateway.store import names
from gateway.store.admission import RateArgs, Verdict
from gateway.store.admission import (
    _common as rate_outcome,  # the admission scripts' answer head, read one way
)
from gateway.store.redis import WorkerRedis, sync_script, text


class ClientStore:
    def __init__(self, redis: Redis, live: WorkerRedis | None = None) -> None:
        self._redis = redis  # a sync client: Authlib and the CLI call this from threads
        self._live = live    # the worker's async client (store.redis.async_client), for the `a...` methods
        self._rate_limit = sync_script(redis, "rate_limit", ("gcra",))

    def get(self, client_id: str) -> dict[str, Any] | None:
        raw = self._redis.get(names.client(client_id))
        return orjson.loads(raw) if raw else None

    async def aget(self, client_id: str) -> dict[str, Any] | None:
        """`get` on the worker's async client; read on every call, never cached (a client disabled or given new
        keys holds from its next call)."""
        raw = await self._async.get(names.client(client_id))
        return orjson.loads(raw) if raw else None

    @property
    def _async(self) -> WorkerRedis:
        if self._live is None:
            raise RuntimeError("the client store was built without an async client")
        return self._live

    def add(self, document: dict[str, Any]) -> bool:
        """Store a new client; False if the id is taken (nothing is overwritten)."""
        client_id = document["client_id"]
        if not self._redis.set(names.client(client_id), orjson.dumps(document), nx=True):
            return False
        pipe = self._redis.pipeline()
        pipe.sadd(names.CLIENTS, client_id)
        pipe.delete(names.client_disabled(client_id))
        pipe.execute()
        # A signing key revoked lately: its tokens are refused for this client too (whoever stole the key could
        # otherwise mint tokens for a client registered since, until every worker re-reads its keys).
        now_ms = int(time.time() * 1000)
        self._redis.zremrangebyscore(names.REVOKED_KEYS, "-inf", now_ms)
        revoked = self._redis.zrangebyscore(names.REVOKED_KEYS, now_ms, "+inf", withscores=True)
        for kid, until_ms in cast(list[tuple[bytes, float]], revoked):  # withscores: (member, score) pairs
            self._redis.set(names.revoked_key(client_id, kid.decode()), b"1", px=max(int(until_ms) - now_ms, 1))
        return True

    def replace(self, document: dict[str, Any], software: str | None) -> None:
        """Overwrite an existing client (status changes, `obgw clients add --replace`, a certificate added); a client
        that is not active gets the marker Admit checks, so its tokens stop on the next call, and its `software`
        (`oauth.models.Client.software`) is refused by registration; made active again, the refusal it caused is
        lifted."""
        client_id = document["client_id"]
        active = document.get("status", "active") == "active"
        lifted = active and software is not None and self._redis.hget(names.REFUSED_SOFTWARE, software) == \
            client_id.encode()
        pipe = self._redis.pipeline()
        pipe.set(names.client(client_id), orjson.dumps(document))
        pipe.sadd(names.CLIENTS, client_id)
        if active:
            pipe.delete(names.client_disabled(client_id))
        else:
            pipe.set(names.client_disabled(client_id), b"1")
            if software is not None:
                pipe.hset(names.REFUSED_SOFTWARE, software, client_id)
        if lifted and software is not None:
            pipe.hdel(names.REFUSED_SOFTWARE, software)
        pipe.execute()

    def delete(self, client_id: str, software: str | None) -> bool:
        """RFC 7592 §2.3: the client is gone, and its tokens with it (the disabled marker stays); its `software` may
        not register again until an operator allows it (`obgw clients enable`)."""
        pipe = self._redis.pipeline()
        pipe.delete(names.client(client_id))
        pipe.srem(names.CLIENTS, client_id)
        pipe.set(names.client_disabled(client_id), b"1")
        if software is not None:
            pipe.hset(names.REFUSED_SOFTWARE, software, client_id)
        return bool(pipe.execute()[0])

    def software_refused(self, software: str) -> bool:
        """Is this the software of a disabled or deleted client (registration refuses it)?"""
        return bool(self._redis.hexists(names.REFUSED_SOFTWARE, software))

    def refused_software_of(self, client_id: str) -> list[str]:
        """The software ids registration refuses because of this client (disabled, or deleted)."""
        return [text(software) for software, owner in self._redis.hgetall(names.REFUSED_SOFTWARE).items()
                if text(owner) == client_id]

    def allow_software_of(self, client_id: str) -> list[str]:
        """Lift the registration refusals a deleted client left (its document is gone); the software ids freed."""
        freed = self.refused_software_of(client_id)
        if freed:
            self._redis.hdel(names.REFUSED_SOFTWARE, *freed)
        return freed

    def claim_statement(self, digest: str, seconds: int) -> bool:
        """A software statement (by the SHA-256 of its issuer and jti) registers once: False if it was used already.
        Remembered for `seconds`, as long as the statement could still be accepted."""
        return bool(self._redis.set(names.statement_jti(digest), b"1", nx=True, ex=max(seconds, 1)))

    def charge(self, client_id: str, rate: RateArgs) -> Verdict:
        """One call against the client's rate limit for `rate`'s route group (gcra.lua, exact across workers)."""
        answer = self._rate_limit(keys=[names.rate_bucket(client_id, rate.group), names.client_tier(client_id)],
                                  args=[rate.default_tier, rate.limits, rate.group])
        reason, state, retry_ms = rate_outcome(answer)
        return Verdict(reason, retry_ms, rate=state)

    def tier(self, client_id: str) -> str | None:
        """The client's rate-limit tier, if it has been given one (else the policy's default applies)."""
        raw = self._redis.get(names.client_tier(client_id))
        return text(raw) if raw else None

    def set_tier(self, client_id: str, tier: str) -> None:
        """Read by the admission scripts on every call, so it holds from the client's next call on every worker."""
        self._redis.set(names.client_tier(client_id), tier)

    def plan(self, client_id: str) -> str | None:
        """The client's price plan, if it has been given one (else plans.yaml's `default_plan` applies)."""
        raw = self._redis.get(names.client_plan(client_id))
        return text(raw) if raw else None

    def set_plan(self, client_id: str, plan: str) -> None:
        """Read by admit.lua on every call (its quotas, the plan its usage is billed on): from the client's next call,
        on every worker."""
        self._redis.set(names.client_plan(client_id), plan)

    def rate_state(self, client_id: str, group: str) -> tuple[float, float] | None:
        """(the group bucket's theoretical arrival time in µs, Redis's time now in µs), or None if unused lately."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(names.rate_bucket(client_id, group))
        pipe.time()
        tat, (seconds, micros) = pipe.execute()
        return (float(tat), seconds * 1_000_000 + micros) if tat else None

    def all(self) -> Iterator[dict[str, Any]]:
        for client_id in sorted(text(member) for member in self._redis.smembers(names.CLIENTS)):
            document = self.get(client_id)
            if document is not None:
                yield document
