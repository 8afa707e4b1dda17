"""ClientStore: the TPP registry in Redis, one JSON document per client (survives restarts with the AOF).

Callers: `oauth.server` (query_client, in Authlib's thread), `oauth.registration` (DCR), `cli.clients`, `cli.demo`.
"""
from __future__ import annotations

from collections.abc import Iterator

import orjson

from gateway.store import keys


class ClientStore:
    def __init__(self, redis) -> None:
        self._redis = redis  # a sync client: Authlib and the CLI call this from threads

    def get(self, client_id: str) -> dict | None:
        raw = self._redis.get(keys.client(client_id))
        return orjson.loads(raw) if raw else None

    def add(self, document: dict) -> bool:
        """Store a new client; False if the id is taken (nothing is overwritten)."""
        client_id = document["client_id"]
        if not self._redis.set(keys.client(client_id), orjson.dumps(document), nx=True):
            return False
        pipe = self._redis.pipeline()
        pipe.sadd(keys.CLIENTS, client_id)
        pipe.delete(keys.client_disabled(client_id))
        pipe.execute()
        return True

    def replace(self, document: dict) -> None:
        """Overwrite an existing client (status changes, `obgw clients add --replace`); a client that is not
        active gets the marker Admit checks, so its tokens stop on the next call."""
        client_id = document["client_id"]
        pipe = self._redis.pipeline()
        pipe.set(keys.client(client_id), orjson.dumps(document))
        pipe.sadd(keys.CLIENTS, client_id)
        if document.get("status", "active") == "active":
            pipe.delete(keys.client_disabled(client_id))
        else:
            pipe.set(keys.client_disabled(client_id), b"1")
        pipe.execute()

    def delete(self, client_id: str) -> bool:
        """RFC 7592 §2.3: the client is gone, and its tokens with it (the disabled marker stays)."""
        pipe = self._redis.pipeline()
        pipe.delete(keys.client(client_id))
        pipe.srem(keys.CLIENTS, client_id)
        pipe.set(keys.client_disabled(client_id), b"1")
        return bool(pipe.execute()[0])

    def tier(self, client_id: str) -> str | None:
        """The client's rate-limit tier, if it has been given one (else the policy's default applies)."""
        raw = self._redis.get(keys.client_tier(client_id))
        return raw.decode() if raw else None

    def set_tier(self, client_id: str, tier: str) -> None:
        """Read by the admission scripts on every call, so it holds from the client's next call on every worker."""
        self._redis.set(keys.client_tier(client_id), tier)

    def rate_state(self, client_id: str, group: str) -> tuple[float, float] | None:
        """(the group bucket's theoretical arrival time in µs, Redis's time now in µs), or None if unused lately."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(keys.rate_bucket(client_id, group))
        pipe.time()
        tat, (seconds, micros) = pipe.execute()
        return (float(tat), seconds * 1_000_000 + micros) if tat else None

    def all(self) -> Iterator[dict]:
        for client_id in sorted(member.decode() for member in self._redis.smembers(keys.CLIENTS)):
            document = self.get(client_id)
            if document is not None:
                yield document
