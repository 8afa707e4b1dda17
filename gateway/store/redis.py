"""Redis connections: one async pool per worker for the request path, one sync client for the CLI and Authlib.

Lua scripts live in `store/scripts/*.lua`, are loaded once and run by SHA (`EVALSHA`, reloaded on NOSCRIPT) through
AsyncScript on the request path.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any, cast

import hiredis
import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import Script

ConnectionError = redis.ConnectionError
RedisError = redis.RedisError
ResponseError = redis.ResponseError
NoScriptError = redis.exceptions.NoScriptError

ScriptArg = str | bytes | int | float  # what a script's ARGV may hold (hiredis packs each)


def text(value: bytes | str) -> str:
    """A string Redis gave back: bytes from the gateway's clients (decode_responses=False), which redis-py's types
    cannot tell from str."""
    return value.decode() if isinstance(value, bytes) else value


def _script_source(name: str, preludes: tuple[str, ...] = ()) -> str:
    """The script's Lua, after the shared functions it uses (a prelude is one more file in scripts/)."""
    files = resources.files("gateway.store").joinpath("scripts")
    return "\n".join(files.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in (*preludes, name))


class WorkerRedis(aioredis.Redis):
    """The hot-path client: redis-py's, plus the connections its scripts run on (`ScriptConnections`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.script_connections = ScriptConnections(self.connection_pool)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await self.script_connections.close()
        await super().aclose(close_connection_pool)


def async_client(url: str, max_connections: int = 64) -> WorkerRedis:
    """The hot-path client: pooled, with short timeouts so an unreachable Redis fails fast (and closed)."""
    return cast(WorkerRedis, WorkerRedis.from_url(
        url, max_connections=max_connections, socket_connect_timeout=1.0, socket_timeout=2.0,
        health_check_interval=30, decode_responses=False, retry=Retry(NoBackoff(), 1),
    ))


class ScriptConnections:
    """Connections for AsyncScript, made by the client's pool (same address, password, timeouts) but kept apart.

    Taking one from redis-py's pool costs a lock, observability hooks and a socket check on every checkout: ~18 µs of
    a worker's CPU per proxied call (loadtests/bench.py). Here a connection is given back only after a whole answer,
    so an idle one is always in step with Redis; one that failed is dropped, with every idle one (after a Redis
    restart they are all dead). As many as the pool's `max_connections` at once; one more fails, as the pool does.
    """

    def __init__(self, pool: aioredis.ConnectionPool) -> None:
        self._pool = pool
        self._idle: list[AbstractConnection] = []
        self._in_use = 0

    async def take(self) -> tuple[AbstractConnection, bool]:
        """(a connected connection, whether it was kept from an earlier call)."""
        if self._in_use >= self._pool.max_connections:
            raise redis.exceptions.MaxConnectionsError("Too many connections")
        self._in_use += 1
        try:
            reused = bool(self._idle)
            # redis-py leaves ConnectionPool.make_connection unannotated.
            connection = self._idle.pop() if reused else self._pool.make_connection()  # type: ignore[no-untyped-call]
            if not connection.is_connected:
                await connection.connect()
        except BaseException:
            self._in_use -= 1
            raise
        return connection, reused

    def give_back(self, connection: AbstractConnection) -> None:
        self._in_use -= 1
        self._idle.append(connection)

    async def drop(self, connection: AbstractConnection) -> None:
        self._in_use -= 1
        stale, self._idle = self._idle, []
        for each in (connection, *stale):
            await each.disconnect()

    async def close(self) -> None:
        stale, self._idle = self._idle, []
        for each in stale:
            await each.disconnect()


def sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0, decode_responses=False)


class AsyncScript:
    """A Lua script for the request path: `await script(keys=[...], args=[...])`, one EVALSHA.

    The command is packed by hiredis and sent on one of the client's `script_connections`: redis-py's command layers
    (retry wrapper, observability hooks, packing each argument in Python) cost 38-50 µs of CPU per call against
    16 µs this way (admission passes 21 keys and arguments). What redis-py did is kept: an error reply raises
    ResponseError; NOSCRIPT (a restarted Redis) loads the script and runs it again, since it did not run. Any other
    failure drops the connection (a half-read answer is never read by the next call). Unlike the pool's
    `Retry(NoBackoff(), 1)`, a failure is retried only when it cannot have run the script: a kept connection found
    dead. A timeout is never retried, since the script may have run (admission would be charged twice).
    """

    def __init__(self, client: WorkerRedis, source: str) -> None:
        self._client = client
        self._source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str] = (), args: Sequence[ScriptArg] = ()) -> Any:
        # hiredis's stub types the command as a tuple of one item (Tuple[X], meant as Tuple[X, ...]).
        command = hiredis.pack_command(("EVALSHA", self.sha, len(keys), *keys, *args))  # type: ignore[arg-type]
        try:
            return await self._run(command)
        except NoScriptError:
            await self._client.script_load(self._source)
            return await self._run(command)

    async def _run(self, command: bytes) -> Any:
        connections = self._client.script_connections
        while True:
            connection, reused = await connections.take()
            try:
                await connection.send_packed_command(command)
                answer = await connection.read_response()
            except ResponseError:
                connections.give_back(connection)  # Redis answered: the connection is in step
                raise
            except BaseException as exc:
                await connections.drop(connection)  # and every idle one: after a restart they are all dead
                # A kept connection found dead was dropped while idle (Redis restarted, or closed it): the command
                # did not reach a Redis that could run it, so it is sent once more on a fresh connection. Anything
                # else may have come after the script ran (a timeout, a reply lost on a fresh connection) and is
                # raised: fail closed rather than run it twice.
                if reused and isinstance(exc, ConnectionError):
                    continue
                raise
            else:
                connections.give_back(connection)
                return answer


def async_script(client: WorkerRedis, name: str, preludes: tuple[str, ...] = ()) -> AsyncScript:
    return AsyncScript(client, _script_source(name, preludes))


def sync_script(client: redis.Redis, name: str, preludes: tuple[str, ...] = ()) -> Script:
    return client.register_script(_script_source(name, preludes))
