"""IdempotencyStore: the x-idempotency-key of UK Open Banking v3.1 (async, one Lua round trip per operation).

A key is scoped per TPP and kept 24 h. A retry with the same key and the same request (its digest, computed by the
caller) gets the first answer byte for byte, without a second effect; the same key with another request is refused.

    claim = await store.claim(client_id, key, digest)
    "new"      -> this call owns the key: do the work, then `finish(..., claim, response)` with the answer to keep,
                  or `release(..., claim)` if it gave up before any effect (e.g. refused by validation).
    "replay"   -> answer `claim.response` (the first answer).
    "mismatch" -> refuse (same key, other request), whatever the first call's state.
    "pending"  -> another call with this key and request is running: `wait(...)` for it, or refuse (409).
                  `claim.orphaned`: the owner's lease has run out (it most likely died; see below).

Crash semantics (the trade-off). The record stores the digest, a random per-claim owner token and a lease
(`lease_seconds`, on Redis's clock). If the owner's worker dies mid-request we cannot know whether the request
reached the bank: the payment may well have been made and only the answer lost. Letting a later claim take the key
over after the lease ("new" again) would turn the TPP's retry into a *second payment*, which is exactly what the
idempotency key is there to prevent. So the safe default is chosen: a lease never transfers ownership.

* Past its lease a pending record stays "pending" (with `orphaned=True`) until the key's 24 h TTL, unless
  - its owner still finishes (a slow owner past its lease is not robbed: its answer is stored and replayed), or
    releases it, or
  - an operator calls `abandon(client_id, key)` after reconciling with the bank that the first request had no effect;
    `abandon` only frees a pending record whose lease has run out (a live owner is never robbed, an answer never
    dropped).
* What the lease does buy: `wait()` stops as soon as the owner's lease has run out instead of polling to its
  timeout, and callers can tell "still running" from "in doubt" (`orphaned`) in what they answer the TPP.
The cost: after a crash the TPP cannot get an answer under that key (it must ask the payment's status, or use a new
key once it knows the first did not go through). A stuck key for a day is recoverable; a double payment is not.

Limits: `finish` refuses (ResponseTooLarge, before touching Redis: the key stays pending, i.e. safe) a body over
`max_body_bytes` (256 KiB) or headers over `max_header_bytes` (32 KiB packed). Keys are stored under their SHA-256,
so any string is safe here (refusing keys over 40 characters is the caller's job, per UK OB).

Key: `keys.idempotency_record(client_id, key)` = `obgw:{<client>}:idem:<sha256 hex of key>`.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.store.names import idempotency_record
from gateway.store.redis import WorkerRedis, async_script

MAX_BODY_BYTES = 256 * 1024
MAX_HEADER_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    state: str                                  # "new" | "replay" | "mismatch" | "pending"
    response: StoredResponse | None = None      # "replay" only
    token: str | None = field(default=None, repr=False)  # "new" only: the owner's proof for finish/release
    orphaned: bool = False                      # "pending" only: the owner's lease has run out (see module doc)


class NotOwner(RuntimeError):
    """finish/release with a token that does not own a pending record (released, abandoned, finished or expired)."""


class ResponseTooLarge(ValueError):
    """The answer is too big to keep; nothing was written (the key stays pending)."""


class IdempotencyStore:
    def __init__(self, redis_async: WorkerRedis, ttl_seconds: int = 86_400, lease_seconds: float = 30, *,
                 max_body_bytes: int = MAX_BODY_BYTES, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        if ttl_seconds <= 0 or lease_seconds <= 0:
            raise ValueError("ttl_seconds and lease_seconds must be positive")
        self._redis = redis_async
        self._script = async_script(redis_async, "idempotency")
        self._ttl_ms = int(ttl_seconds * 1000)
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._max_body = max_body_bytes
        self._max_headers = max_header_bytes

    async def claim(self, client_id: str, key: str, request_digest: str) -> Claim:
        """One EVALSHA: take the key if free ("new"), else say what holds it (module doc)."""
        token = secrets.token_hex(16)
        answer = await self._script(keys=[idempotency_record(client_id, key)],
                                    args=["claim", request_digest, token, self._ttl_ms, self._lease_ms])
        state = answer[0].decode()
        if state == "new":
            return Claim("new", token=token)
        if state == "replay":
            return Claim("replay", StoredResponse(int(answer[1]), _unpack_headers(answer[2]), bytes(answer[3])))
        if state == "pending":
            return Claim("pending", orphaned=answer[1] == b"1")
        return Claim(state)

    async def finish(self, client_id: str, key: str, owner: Claim | str, response: StoredResponse) -> None:
        """Keep the owner's answer for the full TTL; later claims with the same digest replay it.

        Raises ResponseTooLarge (nothing written) or NotOwner (nothing written: the key is not this claim's)."""
        body = _bytes(response.body)
        if len(body) > self._max_body:
            raise ResponseTooLarge(f"body of {len(body)} bytes (limit {self._max_body})")
        headers = _pack_headers(response.headers)
        if len(headers) > self._max_headers:
            raise ResponseTooLarge(f"headers of {len(headers)} bytes packed (limit {self._max_headers})")
        stored = await self._script(keys=[idempotency_record(client_id, key)],
                                    args=["finish", _token(owner), int(response.status), headers,
                                          body, self._ttl_ms])
        if not stored:
            raise NotOwner(f"idempotency key of {client_id} is not held by this claim")

    async def release(self, client_id: str, key: str, owner: Claim | str) -> None:
        """The owner gave up before any effect: the key is free again. Raises NotOwner (nothing touched) otherwise."""
        if not await self._script(keys=[idempotency_record(client_id, key)], args=["release", _token(owner)]):
            raise NotOwner(f"idempotency key of {client_id} is not held by this claim")

    async def abandon(self, client_id: str, key: str) -> bool:
        """Operator recovery after a crash: free a pending key whose owner's lease has run out. Only once the bank
        confirms the first request had no effect (else the retry pays twice). False: nothing freed."""
        return bool(await self._script(keys=[idempotency_record(client_id, key)], args=["abandon"]))

    async def wait(self, client_id: str, key: str, request_digest: str, timeout_s: float) -> Claim:
        """For "pending": claim again with small, growing sleeps (10 ms .. 200 ms) until the state is not pending,
        the owner's lease has run out (orphaned: waiting longer is pointless), or `timeout_s` has passed.
        Returns the last Claim; "new" means the owner released and THIS caller now owns the key (finish/release)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        pause = 0.01
        while True:
            claim = await self.claim(client_id, key, request_digest)
            left = deadline - time.monotonic()
            if claim.state != "pending" or claim.orphaned or left <= 0:
                return claim
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 0.2)


def _token(owner: Claim | str) -> str:
    token = owner.token if isinstance(owner, Claim) else owner
    if not token:
        raise NotOwner("not an owning claim (only a 'new' claim carries a token)")
    return token


def _bytes(value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return bytes(value)


def _pack_headers(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """name, value, name, value ... each as a 4-byte big-endian length and its bytes (exact, binary-safe)."""
    out = bytearray()
    for name, value in headers:
        for part in (_bytes(name), _bytes(value)):
            out += len(part).to_bytes(4, "big")
            out += part
    return bytes(out)


def _unpack_headers(packed: bytes) -> tuple[tuple[bytes, bytes], ...]:
    parts, at = [], 0
    while at < len(packed):
        size = int.from_bytes(packed[at:at + 4], "big")
        parts.append(bytes(packed[at + 4:at + 4 + size]))
        at += 4 + size
    return tuple(zip(parts[::2], parts[1::2], strict=True))
