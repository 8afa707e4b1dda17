"""AuthorizationStore: the authorization server's short-lived state in Redis.

Every credential (request_uri, authorization code, refresh token, login session id) is stored under the SHA-256 of
its value, so a Redis dump yields nothing usable; single-use values are taken with GETDEL, so two workers can never
both redeem one. Lifetimes are Redis TTLs: an expired entry is simply gone.

Callers: `oauth.par`, `oauth.grants`, `oauth.client_auth`, `oauth.revocation`, `oauth.introspection`,
`oauth.signing_keys`, `web.authorize` (through `oauth`), all from Authlib's thread with the sync client.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from redis import Redis
from redis.exceptions import WatchError

from gateway.crypto import SealBroken, Sealer, derive_key
from gateway.store import names
from gateway.store.redis import sync_script, text

_ADD_FIRST_KEY = "if redis.call('HLEN', KEYS[1]) == 0 then return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class AuthorizationStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._take = sync_script(redis, "take_owned")
        self._claim_jti = sync_script(redis, "claim_jti")

    def _take_owned(self, key: str, marker: str,
                    client_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(the record if this client's and still there, else the redemption marker if any); see take_owned.lua."""
        answer = self._take(keys=[key, marker], args=[client_id])
        if answer[0] == b"taken":
            return orjson.loads(answer[1]), None
        if answer[0] == b"gone" and answer[1]:
            return None, orjson.loads(answer[1])
        return None, None

    # Pushed authorization requests (RFC 9126 §2.2: the request_uri is single-use and short-lived).
    def push_request(self, request_uri: str, params: dict[str, Any], seconds: int) -> None:
        self._redis.set(names.pushed_request(digest(request_uri)), orjson.dumps(params), ex=seconds)

    def take_request(self, request_uri: str, client_id: str) -> dict[str, Any] | None:
        """The pushed request, taken (single use) - only by the client that pushed it."""
        key = names.pushed_request(digest(request_uri))
        return self._take_owned(key, key, client_id)[0]  # no redemption marker: a pushed request issues nothing

    # Authorization codes (RFC 6749 §4.1.2: single-use; §10.5: short-lived). A code that gave tokens leaves a marker
    # naming its grant, so a replay revokes what the first redemption issued (§4.1.2). A code taken by a refused
    # attempt (a wrong code_verifier, say) is gone too, but issued nothing, so there is nothing to revoke.
    def save_code(self, code: str, record: dict[str, Any], seconds: int) -> None:
        self._redis.set(names.authorization_code(digest(code)), orjson.dumps(record), ex=seconds)

    def take_code(self, code: str, client_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(the code's record if it was unused and this client's, else the marker of a redemption that issued
        tokens, if any). Another client's attempt leaves the code as it was."""
        key = digest(code)
        return self._take_owned(names.authorization_code(key), names.used_code(key), client_id)

    def mark_code_redeemed(self, code: str, client_id: str, grant_id: str, seconds: int) -> None:
        self._redis.set(names.used_code(digest(code)), orjson.dumps({"client_id": client_id, "grant_id": grant_id}),
                        ex=seconds)

    # private_key_jwt assertions (RFC 7523 §3 item 7: a jti may be used once). A jti is remembered by its SHA-256, for
    # `seconds`, and a client holds at most `limit` at once: what one TPP keeps in Redis is bounded (claim_jti.lua).
    def claim_jti(self, client_id: str, jti: str, seconds: int, limit: int) -> str:
        """"claimed", "used" (seen before) or "full" (the client holds `limit` jtis not yet forgotten)."""
        member = hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()  # JSON may hold a lone surrogate
        answer: bytes = self._claim_jti(keys=[names.assertion_jtis(client_id)],
                                        args=[member, max(seconds, 1) * 1000, limit])
        return answer.decode()

    def claim_dpop_proof(self, client_id: str, jti: str, seconds: int) -> bool:
        """True the first time this DPoP proof's jti is seen (remembered `seconds`); the key Admit's scripts use."""
        return bool(self._redis.set(names.dpop_proof(client_id, digest(jti)), "1", nx=True, px=seconds * 1000))

    # Refresh tokens: bound to client, certificate and consent; found by their hash.
    def save_refresh_token(self, client_id: str, token: str, record: dict[str, Any], seconds: int) -> None:
        self._redis.set(names.refresh_token(client_id, digest(token)), orjson.dumps(record), ex=max(seconds, 1))

    def refresh_token(self, client_id: str, token: str) -> dict[str, Any] | None:
        raw = self._redis.get(names.refresh_token(client_id, digest(token)))
        return orjson.loads(raw) if raw else None

    def delete_refresh_token(self, client_id: str, token: str) -> None:
        self._redis.delete(names.refresh_token(client_id, digest(token)))

    # Revocation (RFC 7009): read by the Admit script on every resource call, so it holds on every worker at once.
    def revoke_token(self, client_id: str, jti: str, seconds: int) -> None:
        self._redis.set(names.revoked_token(client_id, jti), b"1", ex=max(seconds, 1))

    def revoke_grant(self, client_id: str, grant_id: str, seconds: int) -> None:
        self._redis.set(names.revoked_grant(client_id, grant_id), b"1", ex=max(seconds, 1))

    def is_revoked(self, client_id: str, jti: str | None, grant_id: str | None) -> bool:
        found = ([names.revoked_token(client_id, jti)] if jti else []) + (
            [names.revoked_grant(client_id, grant_id)] if grant_id else [])
        return bool(found) and bool(self._redis.exists(*found))

    # Signing keys (persisted, private halves sealed: oauth.signing_keys; rotation keeps the previous ones verifying).
    def signing_keys(self) -> dict[str, dict[str, Any]]:
        return {text(kid): orjson.loads(raw) for kid, raw in self._redis.hgetall(names.SIGNING_KEYS).items()}

    def add_signing_key(self, kid: str, record: dict[str, Any], *, only_if_none: bool = False) -> bool:
        """Add a key; with `only_if_none`, only when no key exists yet (two workers starting at once make one)."""
        if only_if_none:
            return bool(self._redis.eval(_ADD_FIRST_KEY, 1, names.SIGNING_KEYS, kid, orjson.dumps(record)))
        return bool(self._redis.hset(names.SIGNING_KEYS, kid, orjson.dumps(record)))

    def update_signing_keys(self, updated: dict[str, dict[str, Any]], removed: list[str]) -> None:
        pipe = self._redis.pipeline()
        for kid, record in updated.items():
            pipe.hset(names.SIGNING_KEYS, kid, orjson.dumps(record))
        if removed:
            pipe.hdel(names.SIGNING_KEYS, *removed)
        pipe.execute()

    def replace_signing_key(self, kid: str, record: dict[str, Any], replacement: dict[str, Any]) -> bool:
        """Replace `kid`'s record only if it is still `record` (sealing a key stored in clear never brings back a
        revoked key or undoes a rotation made meanwhile): an optimistic transaction on the keys' hash."""
        with self._redis.pipeline() as pipe:
            try:
                pipe.watch(names.SIGNING_KEYS)  # type: ignore[no-untyped-call]  # redis-py leaves watch unannotated
                current = pipe.hget(names.SIGNING_KEYS, kid)
                if current is None or orjson.loads(current) != record:
                    return False
                pipe.multi()
                pipe.hset(names.SIGNING_KEYS, kid, orjson.dumps(replacement))
                pipe.execute()
            except WatchError:
                return False
        return True

    def revoke_signing_key(self, kid: str, seconds: int, new: tuple[str, dict[str, Any]] | None) -> int:
        """Mark `kid` revoked for every registered client (read by the admission scripts with the token's other
        revocation keys, under the client's hash tag), then delete it, adding `new` in the same transaction. The
        markers come first, so no moment exists where the key is gone here but its tokens still pass Admit.
        Returns how many clients were marked."""
        self._redis.zadd(names.REVOKED_KEYS, {kid: int((time.time() + seconds) * 1000)})  # before the clients are read
        client_ids = [text(member) for member in self._redis.smembers(names.CLIENTS)]
        markers = self._redis.pipeline(transaction=False)  # one slot per client on a Cluster
        for client_id in client_ids:
            markers.set(names.revoked_key(client_id, kid), b"1", ex=seconds)
        markers.execute()
        pipe = self._redis.pipeline()
        pipe.hdel(names.SIGNING_KEYS, kid)
        if new is not None:
            pipe.hset(names.SIGNING_KEYS, new[0], orjson.dumps(new[1]))
        pipe.execute()
        return len(client_ids)

    def pseudonym_secret(self, candidate: bytes) -> bytes:
        """The stored key of the token subjects, as stored (sealed by the caller): `candidate` unless one is stored
        already, so two workers starting at once keep one."""
        self._redis.set(names.PSEUDONYM_SECRET, candidate, nx=True)
        stored = self._redis.get(names.PSEUDONYM_SECRET)
        assert isinstance(stored, bytes)  # set just above; the client answers bytes
        return stored

    def replace_pseudonym_secret(self, found: bytes, replacement: bytes) -> None:
        """Store `replacement` only if `found` is still what is stored (sealing a secret an older version kept in
        clear)."""
        with self._redis.pipeline() as pipe:
            try:
                pipe.watch(names.PSEUDONYM_SECRET)  # type: ignore[no-untyped-call]  # as above
                if pipe.get(names.PSEUDONYM_SECRET) == found:
                    pipe.multi()
                    pipe.set(names.PSEUDONYM_SECRET, replacement)
                    pipe.execute()
            except WatchError:
                pass

    # The customer's server-side sessions: "authorize" (login and consent steps), "dashboard" (consent dashboard).
    # A session's state (the customer's id and name, the consent it is for) is sealed under a key derived from the
    # session id, which only the customer's cookie holds (Redis has its SHA-256): Redis alone reads none of it.
    def save_session(self, kind: str, session_id: str, state: dict[str, Any], seconds: int) -> None:
        sealed = _session_sealer(session_id).seal(orjson.dumps(state), kind.encode())
        self._redis.set(names.customer_session(kind, digest(session_id)), sealed, ex=seconds)

    def session(self, kind: str, session_id: str) -> dict[str, Any] | None:
        return _opened(kind, session_id, self._redis.get(names.customer_session(kind, digest(session_id))))

    def end_session(self, kind: str, session_id: str) -> dict[str, Any] | None:
        return _opened(kind, session_id, self._redis.getdel(names.customer_session(kind, digest(session_id))))


def _session_sealer(session_id: str) -> Sealer:
    return Sealer(derive_key(session_id.encode(), b"obgw customer session v1"))


def _opened(kind: str, session_id: str, raw: bytes | str | None) -> dict[str, Any] | None:
    """The state of a sealed session; None when there is none, or it does not open (written by an older version, or
    changed in Redis: the customer starts again)."""
    if not isinstance(raw, bytes) or not raw:
        return None
    try:
        state: dict[str, Any] = orjson.loads(_session_sealer(session_id).open(raw, kind.encode()))
        return state
    except SealBroken:
        return None
