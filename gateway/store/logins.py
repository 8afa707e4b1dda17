"""LoginStore: what the customer login's guards count in Redis, shared by every page and worker (web.login).

One Lua round trip per step, each on one key (valid on Redis Cluster):
- per username (`names.login_attempts`): attempts since the last success, the locks since then and the current lock's
  end (login_attempt.lua: the attempt is counted before the bank is asked, and a locked username is refused without
  touching its lock);
- per source address (`names.login_source`): failed logins in a fixed window (login_source.lua; an attempt that was
  no failed password gives its count back).
Usernames and addresses are kept under an HMAC-SHA256 with a key held outside Redis (derived from `audit.key`), so a
Redis dump cannot test guessed usernames against them; every key expires on its own. Times are Redis's clock.
The second factor's guesses are counted by the same scripts under names of their own (`second_factor`).
"""
from __future__ import annotations

import hashlib
import hmac

from gateway.store import names
from gateway.store.redis import WorkerRedis, async_script


class LoginStore:
    def __init__(self, redis: WorkerRedis, name_key: bytes) -> None:
        """`name_key` keys the HMAC that names the counters (the same on every worker, never in Redis)."""
        self._redis = redis
        self._name_key = name_key
        self._attempt = async_script(redis, "login_attempt")
        self._source = async_script(redis, "login_source")

    async def take_attempt(self, username: str, per_lock: int, first_lock_ms: int, longest_lock_ms: int,
                           forget_ms: int) -> int:
        """0 if the attempt is counted (ask the bank), else the ms left of the username's lock."""
        return int(await self._attempt(keys=[names.login_attempts(self._name(username))],
                                       args=[per_lock, first_lock_ms, longest_lock_ms, forget_ms]))

    async def take_source(self, source: str, most: int, window_ms: int) -> int:
        """0 if the attempt is counted against the source address, else the ms until its window ends."""
        return int(await self._source(keys=[names.login_source(self._name(source))], args=["take", most, window_ms]))

    async def refund_source(self, source: str) -> None:
        """Give back an attempt counted against the source address (it was no failed password)."""
        await self._source(keys=[names.login_source(self._name(source))], args=["refund", 0, 0])

    async def forget_attempts(self, username: str) -> None:
        """A right password: the username's attempts and locks are forgotten."""
        await self._redis.delete(names.login_attempts(self._name(username)))

    def second_factor(self) -> LoginStore:
        """The same counters for one-time codes, named under a key of their own (derived from this one), so a
        customer's wrong codes and wrong passwords lock separately and no username typed at the password step can
        name the counter of anyone's codes."""
        return LoginStore(self._redis, hmac.new(self._name_key, b"obgw one-time codes", hashlib.sha256).digest())

    def _name(self, value: str) -> str:
        return hmac.new(self._name_key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
