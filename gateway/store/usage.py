"""Reading the meter (issue 20): a TPP's usage hash of one UTC month and its plan (`names.usage`,
`names.client_plan`), for `obgw usage` (sync) and `GET /tpp/usage` (async). admit.lua and
`AdmissionStore.settle` write them."""
from __future__ import annotations

from redis import Redis

from gateway.store import names
from gateway.store.redis import WorkerRedis, text


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {text(field): text(value) for field, value in raw.items()}


def usage(redis: Redis, client_id: str, month: str) -> tuple[dict[str, str], str | None]:
    """(the month's usage hash, the client's assigned plan or None)."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(names.usage(client_id, month))
    pipe.get(names.client_plan(client_id))
    raw, plan = pipe.execute()
    return _decoded(raw), text(plan) if plan else None


async def usage_async(redis: WorkerRedis, client_id: str, month: str) -> tuple[dict[str, str], str | None]:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(names.usage(client_id, month))
        pipe.get(names.client_plan(client_id))
        raw, plan = await pipe.execute()
    return _decoded(raw), text(plan) if plan else None
