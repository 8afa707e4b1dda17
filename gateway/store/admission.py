"""AdmissionStore: the hot path's Redis access (async): the one Admit round trip, and the signing keys it may need.

Callers: `pipeline.admission.Admit` (every resource call), `pipeline.token.VerifyAccessToken` (on an unknown kid).
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson

from gateway.store import keys
from gateway.store.redis import async_script


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str | None                 # None: admitted
    retry_ms: int | None = None        # consent.unattended_limit: until a slot frees
    customer_id: str | None = None
    accounts: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    window: tuple[str | None, str | None] = (None, None)


class AdmissionStore:
    def __init__(self, redis) -> None:
        self._redis = redis
        self._admit = async_script(redis, "admit")

    async def admit(self, client_id: str, consent_id: str, jti: str, grant_id: str, *, permissions=(),
                    account_id: str | None = None, unattended: bool = False, allowance: int = 4,
                    window_seconds: int = 86_400) -> Verdict:
        """One EVALSHA of admit.lua (its header lists the checks and their order)."""
        answer = await self._admit(
            keys=[keys.consent(client_id, consent_id), keys.revoked_token(client_id, jti),
                  keys.revoked_grant(client_id, grant_id), keys.client_disabled(client_id),
                  keys.unattended_calls(client_id, consent_id)],
            args=[client_id, grant_id, " ".join(sorted(permissions)), account_id or "", "1" if unattended else "0",
                  allowance, window_seconds * 1000, jti])
        if answer[0] != b"ok":
            return Verdict(answer[0].decode(), int(answer[1]) if len(answer) > 1 else None)
        since, until = orjson.loads(answer[4])
        return Verdict(None, None, answer[1].decode(), tuple(orjson.loads(answer[2])), tuple(orjson.loads(answer[3])),
                       (since, until))

    async def client_active(self, client_id: str, jti: str) -> bool:
        """For client-credentials calls (consent API): the client is enabled and the token not revoked."""
        return not await self._redis.exists(keys.client_disabled(client_id), keys.revoked_token(client_id, jti))

    async def signing_keys(self) -> dict[str, dict]:
        return {kid.decode(): orjson.loads(raw) for kid, raw in (await self._redis.hgetall(keys.SIGNING_KEYS)).items()}
