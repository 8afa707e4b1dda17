"""Redis connections: one async pool per worker for the request path, one sync client for the CLI and Authlib.

Lua scripts live in `store/scripts/*.lua`, are loaded once and run by SHA (`EVALSHA`, reloaded on NOSCRIPT by redis-py).
"""
from __future__ import annotations

from importlib import resources

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

ConnectionError = redis.ConnectionError  # noqa: A001 - re-exported so callers need not import redis
RedisError = redis.RedisError
ResponseError = redis.ResponseError


def _script_source(name: str, preludes: tuple[str, ...] = ()) -> str:
    """The script's Lua, after the shared functions it uses (a prelude is one more file in scripts/)."""
    files = resources.files("gateway.store").joinpath("scripts")
    return "\n".join(files.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in (*preludes, name))


def async_client(url: str, max_connections: int = 64) -> aioredis.Redis:
    """The hot-path client: pooled, with short timeouts so an unreachable Redis fails fast (and closed)."""
    return aioredis.Redis.from_url(
        url, max_connections=max_connections, socket_connect_timeout=1.0, socket_timeout=2.0,
        health_check_interval=30, decode_responses=False, retry=Retry(NoBackoff(), 1),
    )


def sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0, decode_responses=False)


def async_script(client: aioredis.Redis, name: str, preludes: tuple[str, ...] = ()):
    return client.register_script(_script_source(name, preludes))


def sync_script(client: redis.Redis, name: str):
    return client.register_script(_script_source(name))
