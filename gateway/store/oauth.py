"""AuthorizationStore: the authorization server's short-lived state in Redis.

Every credential (request_uri, authorization code, refresh token, login session id) is stored under the SHA-256 of
its value, so a Redis dump yields nothing usable; single-use values are taken with GETDEL, so two workers can never
both redeem one. Lifetimes are Redis TTLs: an expired entry is simply gone.

Callers: `oauth.par`, `oauth.grants`, `oauth.client_auth`, `oauth.revocation`, `oauth.introspection`,
`oauth.keys`, `web.authorize` (through `oauth`), all from Authlib's thread with the sync client.
"""
from __future__ import annotations

import hashlib
import secrets

import orjson

from gateway.store import keys
from gateway.store.redis import sync_script


_ADD_FIRST_KEY = "if redis.call('HLEN', KEYS[1]) == 0 then return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class AuthorizationStore:
    def __init__(self, redis) -> None:
        self._redis = redis
        self._take = sync_script(redis, "take_owned")

    def _take_owned(self, key: str, marker: str, client_id: str) -> tuple[dict | None, dict | None]:
        """(the record if this client's and still there, else the redemption marker if any); see take_owned.lua."""
        answer = self._take(keys=[key, marker], args=[client_id])
        if answer[0] == b"taken":
            return orjson.loads(answer[1]), None
        if answer[0] == b"gone" and answer[1]:
            return None, orjson.loads(answer[1])
        return None, None

    # Pushed authorization requests (RFC 9126 §2.2: the request_uri is single-use and short-lived).
    def push_request(self, request_uri: str, params: dict, seconds: int) -> None:
        self._redis.set(keys.pushed_request(digest(request_uri)), orjson.dumps(params), ex=seconds)

    def take_request(self, request_uri: str, client_id: str) -> dict | None:
        """The pushed request, taken (single use) - only by the client that pushed it."""
        key = keys.pushed_request(digest(request_uri))
        return self._take_owned(key, key, client_id)[0]  # no redemption marker: a pushed request issues nothing

    # Authorization codes (RFC 6749 §4.1.2: single-use; §10.5: short-lived). A code that gave tokens leaves a marker
    # naming its grant, so a replay revokes what the first redemption issued (§4.1.2). A code taken by a refused
    # attempt (a wrong code_verifier, say) is gone too, but issued nothing, so there is nothing to revoke.
    def save_code(self, code: str, record: dict, seconds: int) -> None:
        self._redis.set(keys.authorization_code(digest(code)), orjson.dumps(record), ex=seconds)

    def take_code(self, code: str, client_id: str) -> tuple[dict | None, dict | None]:
        """(the code's record if it was unused and this client's, else the marker of a redemption that issued
        tokens, if any). Another client's attempt leaves the code as it was."""
        key = digest(code)
        return self._take_owned(keys.authorization_code(key), keys.used_code(key), client_id)

    def mark_code_redeemed(self, code: str, client_id: str, grant_id: str, seconds: int) -> None:
        self._redis.set(keys.used_code(digest(code)), orjson.dumps({"client_id": client_id, "grant_id": grant_id}),
                        ex=seconds)

    # private_key_jwt assertions (RFC 7523 §3 item 7: a jti may be used once).
    def claim_jti(self, client_id: str, jti: str, seconds: int) -> bool:
        return bool(self._redis.set(keys.assertion_jti(client_id, jti), b"1", nx=True, ex=max(seconds, 1)))

    # Refresh tokens: bound to client, certificate and consent; found by their hash.
    def save_refresh_token(self, client_id: str, token: str, record: dict, seconds: int) -> None:
        self._redis.set(keys.refresh_token(client_id, digest(token)), orjson.dumps(record), ex=max(seconds, 1))

    def refresh_token(self, client_id: str, token: str) -> dict | None:
        raw = self._redis.get(keys.refresh_token(client_id, digest(token)))
        return orjson.loads(raw) if raw else None

    def delete_refresh_token(self, client_id: str, token: str) -> None:
        self._redis.delete(keys.refresh_token(client_id, digest(token)))

    # Revocation (RFC 7009): read by the Admit script on every resource call, so it holds on every worker at once.
    def revoke_token(self, client_id: str, jti: str, seconds: int) -> None:
        self._redis.set(keys.revoked_token(client_id, jti), b"1", ex=max(seconds, 1))

    def revoke_grant(self, client_id: str, grant_id: str, seconds: int) -> None:
        self._redis.set(keys.revoked_grant(client_id, grant_id), b"1", ex=max(seconds, 1))

    def is_revoked(self, client_id: str, jti: str | None, grant_id: str | None) -> bool:
        names = ([keys.revoked_token(client_id, jti)] if jti else []) + (
            [keys.revoked_grant(client_id, grant_id)] if grant_id else [])
        return bool(names) and bool(self._redis.exists(*names))

    # Signing keys (persisted; rotation keeps the previous ones for verification).
    def signing_keys(self) -> dict[str, dict]:
        return {kid.decode(): orjson.loads(raw) for kid, raw in self._redis.hgetall(keys.SIGNING_KEYS).items()}

    def add_signing_key(self, kid: str, record: dict, *, only_if_none: bool = False) -> bool:
        """Add a key; with `only_if_none`, only when no key exists yet (two workers starting at once make one)."""
        if only_if_none:
            return bool(self._redis.eval(_ADD_FIRST_KEY, 1, keys.SIGNING_KEYS, kid, orjson.dumps(record)))
        return bool(self._redis.hset(keys.SIGNING_KEYS, kid, orjson.dumps(record)))

    def update_signing_keys(self, updated: dict[str, dict], removed: list[str]) -> None:
        pipe = self._redis.pipeline()
        for kid, record in updated.items():
            pipe.hset(keys.SIGNING_KEYS, kid, orjson.dumps(record))
        if removed:
            pipe.hdel(keys.SIGNING_KEYS, *removed)
        pipe.execute()

    def pseudonym_secret(self) -> bytes:
        """The key of the customers' pseudonyms: made once, then the same for every worker and restart."""
        self._redis.set(keys.PSEUDONYM_SECRET, secrets.token_bytes(32), nx=True)
        return self._redis.get(keys.PSEUDONYM_SECRET)

    # Password guessing: failures counted per username across sessions and workers (INCR + TTL: one window).
    def login_failures(self, username: str) -> int:
        return int(self._redis.get(keys.login_failures(digest(username))) or 0)

    def count_login_failure(self, username: str, window_seconds: int) -> int:
        pipe = self._redis.pipeline()
        pipe.incr(keys.login_failures(digest(username)))
        pipe.expire(keys.login_failures(digest(username)), window_seconds, nx=True)
        return int(pipe.execute()[0])

    def clear_login_failures(self, username: str) -> None:
        self._redis.delete(keys.login_failures(digest(username)))

    # The customer's server-side sessions: "authorize" (login and consent steps), "dashboard" (consent dashboard).
    def save_session(self, kind: str, session_id: str, state: dict, seconds: int) -> None:
        self._redis.set(keys.customer_session(kind, digest(session_id)), orjson.dumps(state), ex=seconds)

    def session(self, kind: str, session_id: str) -> dict | None:
        raw = self._redis.get(keys.customer_session(kind, digest(session_id)))
        return orjson.loads(raw) if raw else None

    def end_session(self, kind: str, session_id: str) -> dict | None:
        raw = self._redis.getdel(keys.customer_session(kind, digest(session_id)))
        return orjson.loads(raw) if raw else None
