"""Redis connections: one async pool per worker for the request path, one sync client for the CLI and Authlib.

Lua scripts live in `store/scripts/*.lua`, are loaded once and run by SHA (`EVALSHA`, reloaded on NOSCRIPT) through
AsyncScript on the request path.

`REDIS_URL` may also name a Redis Cluster (`redis+cluster://`) or a master behind Sentinel (`redis+sentinel://`):
see HaAddress at the end. The one-Redis path is the same code as before; only the clients' constructors branch.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any, cast
from urllib.parse import parse_qs, unquote

import hiredis
import redis
import redis.asyncio as aioredis
import redis.cluster
import redis.retry
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode as SyncClusterNode
from redis.commands.core import Script
from redis.sentinel import Sentinel as SyncSentinel

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

    durable_wait = 0  # replicas a durable script waits for (Sentinel: HaAddress.wait)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.script_connections = ScriptConnections(self.connection_pool)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await self.script_connections.close()
        await super().aclose(close_connection_pool)


def async_client(url: str, max_connections: int = 64) -> WorkerRedis:
    """The hot-path client: pooled, with short timeouts so an unreachable Redis fails fast (and closed)."""
    if is_ha(url):
        return _async_ha_client(url, max_connections)
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
    if is_ha(url):
        return _sync_ha_client(url)
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
    source = _script_source(name, preludes)
    if isinstance(client, WorkerCluster):
        return cast(AsyncScript, ClusterScript(client, source, name in DURABLE_SCRIPTS))
    if client.durable_wait and name in DURABLE_SCRIPTS:
        return DurableScript(client, source, client.durable_wait)
    return AsyncScript(client, source)


def sync_script(client: redis.Redis, name: str, preludes: tuple[str, ...] = ()) -> Script:
    return client.register_script(_script_source(name, preludes))


# Redis Cluster and Sentinel (issue 19). `REDIS_URL` names the deployment:
#   redis://[[user]:password@]host:port/db                    one Redis (the hot path above, unchanged)
#   redis+cluster://[[user]:password@]host:port[,host:port...]
#                                                             a Redis Cluster, found through any of these nodes
#   redis+sentinel://[[user]:password@]host:port[,host:port...]/master-name
#                                                             the master the Sentinels name (password: the master's)
# `rediss` instead of `redis` speaks TLS (to every node, Sentinels and the masters they name included), verified
# against `?ssl_ca_certs=FILE` (else the system's CAs), with a client certificate from `ssl_certfile`/`ssl_keyfile`
# where Redis asks for one (its `tls-auth-clients`); redis-py reads the same options on a rediss:// URL.
# `?sentinel_password=...` (and `sentinel_username`) is the Sentinels' own (their `requirepass`), not the master's.
# A query `?wait=N` (default 1 on a Cluster or Sentinel, 0 turns it off) is how many replicas must hold an audit
# append before it counts as stored (`WAIT N 1000` after the script, on its connection): a failover promotes a
# replica, so a record only the lost master held would be gone although the gateway had acknowledged it.
CLUSTER_SCHEME = "redis+cluster://"
SENTINEL_SCHEME = "redis+sentinel://"
HA_SCHEMES = (CLUSTER_SCHEME, SENTINEL_SCHEME, "rediss+cluster://", "rediss+sentinel://")
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
DURABLE_SCRIPTS = frozenset({"audit_append"})  # stored only once a replica holds it (on a Cluster or Sentinel)
WAIT_MS = 1000


class HaAddress:
    """A `redis[s]+cluster://` or `redis[s]+sentinel://` URL, parsed: nodes, credentials, TLS, master name, the
    Sentinels' credentials, replicas to WAIT for. A bad URL is a ValueError naming what is wrong."""

    def __init__(self, url: str) -> None:
        scheme = next((s for s in HA_SCHEMES if url.startswith(s)), None)
        if scheme is None:
            raise ValueError(f"not a Redis Cluster or Sentinel URL (one of {', '.join(HA_SCHEMES)}): {url[:20]!r}")
        rest, _, query = url[len(scheme):].partition("?")
        rest, _, self.master = rest.partition("/")
        credentials, _, hosts = rest.rpartition("@")
        self.cluster = "+cluster" in scheme
        self.tls = scheme.startswith("rediss")
        user, _, password = credentials.partition(":")
        self.username, self.password = unquote(user) or None, unquote(password) or None
        self.nodes = [_host_port(scheme, part) for part in hosts.split(",") if part.strip()]
        options = {name: values[-1] for name, values in parse_qs(query, keep_blank_values=True).items()}
        unknown = sorted(set(options) - {"wait", "sentinel_password", "sentinel_username", *TLS_OPTIONS})
        if unknown:
            raise ValueError(f"{scheme}: unknown option {unknown[0]!r} (known: wait, sentinel_password, "
                             f"sentinel_username, {', '.join(TLS_OPTIONS)})")
        try:
            self.wait = int(options.get("wait", "1"))
        except ValueError:
            raise ValueError(f"{scheme}: wait={options['wait']!r} is not a number of replicas") from None
        self.tls_options = {name: options[name] for name in TLS_OPTIONS if options.get(name)}
        if self.tls_options and not self.tls:
            raise ValueError(f"{scheme}: {next(iter(self.tls_options))} needs TLS "
                             f"({scheme.replace('redis', 'rediss', 1)})")
        self.sentinel_username = options.get("sentinel_username") or None
        self.sentinel_password = options.get("sentinel_password") or None
        if self.cluster and (self.sentinel_password or self.sentinel_username):
            raise ValueError(f"{scheme}: sentinel_password and sentinel_username are for a Sentinel URL")
        if self.wait < 0:
            raise ValueError(f"{scheme}: wait={self.wait} is below 0")
        if not self.nodes:
            raise ValueError(f"{scheme}: no host:port")
        if not self.cluster and not self.master:
            raise ValueError(f"{scheme}: name the master after the hosts (/master-name)")

    def node_options(self) -> dict[str, Any]:
        """What every connection to a data node (a Cluster node, a Sentinel's master) is made with."""
        return {"username": self.username, "password": self.password, **self._tls()}

    def sentinel_options(self, timeout: float) -> dict[str, Any]:
        """What every connection to a Sentinel is made with."""
        return {"username": self.sentinel_username, "password": self.sentinel_password,
                "socket_connect_timeout": timeout, "socket_timeout": timeout, **self._tls()}

    def _tls(self) -> dict[str, Any]:
        return {"ssl": True, **self.tls_options} if self.tls else {}


def _host_port(scheme: str, text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{scheme}: {text.strip()!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_ha(url: str) -> bool:
    return url.startswith(HA_SCHEMES)


def _no_retry() -> redis.retry.Retry:
    return redis.retry.Retry(NoBackoff(), 0)


class WorkerCluster(RedisCluster):
    """The hot-path client on a Redis Cluster: redis-py's, which follows MOVED/ASK and refreshes the slot map. A
    command that failed on a dead or unreachable node is not retried (it may have run): the caller answers 503."""

    durable_wait = 0


def _async_ha_client(url: str, max_connections: int) -> WorkerRedis:
    address = HaAddress(url)
    common: dict[str, Any] = dict(socket_connect_timeout=1.0, socket_timeout=2.0, decode_responses=False,
                                  **address.node_options())
    if address.cluster:
        cluster = WorkerCluster(
            startup_nodes=[AsyncClusterNode(host, port) for host, port in address.nodes],
            require_full_coverage=False, max_connections=max_connections, retry=Retry(NoBackoff(), 0),
            **common)
        cluster.durable_wait = address.wait
        # The stores type their client as WorkerRedis; on a Cluster every command they use exists with the same
        # signature, and scripts go through ClusterScript (async_script).
        return cast(WorkerRedis, cluster)
    sentinel = AsyncSentinel(address.nodes, sentinel_kwargs=address.sentinel_options(1.0))
    client = cast(WorkerRedis, sentinel.master_for(
        address.master, redis_class=WorkerRedis, max_connections=max_connections, health_check_interval=30,
        retry=Retry(NoBackoff(), 1), **common))
    client.durable_wait = address.wait
    return client


def _sync_ha_client(url: str) -> redis.Redis:
    address = HaAddress(url)
    common: dict[str, Any] = dict(socket_connect_timeout=2.0, socket_timeout=10.0, decode_responses=False,
                                  **address.node_options())
    if address.cluster:
        return cast(redis.Redis, SyncCluster(
            startup_nodes=[SyncClusterNode(host, port)  # type: ignore[no-untyped-call]
                           for host, port in address.nodes], require_full_coverage=False,
            retry=_no_retry(), **common))
    sentinel = SyncSentinel(address.nodes, sentinel_kwargs=address.sentinel_options(1.0))
    return cast(redis.Redis, sentinel.master_for(address.master, **common))


class SyncCluster(redis.cluster.RedisCluster):
    """The CLI's and Authlib's client on a Redis Cluster. A Cluster has no MULTI across slots: `pipeline()` is
    per-node batches (what the registry's multi-key updates become; each command still runs once, in order per
    node) unless it WATCHes a key, which makes it a one-slot transaction as on one Redis."""

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        return _LazyPipeline(self, bool(transaction))


class _LazyPipeline:
    def __init__(self, client: SyncCluster, transaction: bool) -> None:
        self._client = client
        self._transaction = transaction
        self._pipe: Any = None

    def _made(self, transaction: bool) -> Any:
        if self._pipe is None:
            self._pipe = redis.cluster.RedisCluster.pipeline(  # type: ignore[no-untyped-call]
                self._client, transaction=transaction)
        return self._pipe

    def watch(self, *names: Any) -> Any:
        return self._made(True).watch(*names)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(self._transaction), name)

    def __enter__(self) -> _LazyPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pipe is not None:
            self._pipe.reset()


class ClusterScript:
    """A Lua script on a Redis Cluster: EVALSHA through the cluster client, which sends it to the node serving its
    keys' one slot (redis-py refuses keys of several slots before sending anything) and follows MOVED/ASK, which
    mean the script did not run. NOSCRIPT (a replica promoted by a failover has no script cache) loads it on every
    master and runs it again, since it did not run. A durable script (the audit append) is followed by WAIT on the
    same connection: it counts as stored only once `durable_wait` replicas hold it."""

    def __init__(self, client: WorkerCluster, source: str, durable: bool) -> None:
        self._client = client
        self._source = source
        self._durable = durable and client.durable_wait > 0
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str] = (), args: Sequence[ScriptArg] = ()) -> Any:
        try:
            return await self._run(keys, args)
        except NoScriptError:
            await self._client.script_load(self._source)
            return await self._run(keys, args)

    async def _run(self, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        if not self._durable or not keys:
            return await self._client.evalsha(self.sha, len(keys), *keys, *args)
        await self._client.initialize()  # the slot map, read once (nothing to do once the client has run a command)
        node = self._client.get_node_from_key(keys[0])
        pipe = self._client.pipeline()
        pipe.evalsha(self.sha, len(keys), *keys, *args)
        pipe.execute_command("WAIT", self._client.durable_wait, WAIT_MS, target_nodes=node)
        answer, replicas = await pipe.execute()
        return _waited(answer, replicas, self._client.durable_wait)


def _waited(answer: Any, replicas: Any, wanted: int) -> Any:
    if isinstance(answer, Exception):
        raise answer
    if int(replicas) < wanted:
        raise NotReplicated(f"the write reached {replicas} of {wanted} replicas within {WAIT_MS} ms")
    return answer


class NotReplicated(redis.exceptions.ConnectionError):
    """A durable write no replica acknowledged in time: not stored as far as a failover is concerned. The audit
    append retried finds it stored already (audit_append.lua), so nothing is written twice."""


class DurableScript(AsyncScript):
    """AsyncScript whose EVALSHA is followed, on the same connection, by `WAIT n 1000` (one Redis behind
    Sentinel): the answer counts only once `n` replicas hold the write."""

    def __init__(self, client: WorkerRedis, source: str, replicas: int) -> None:
        super().__init__(client, source)
        self._wait = hiredis.pack_command(("WAIT", replicas, WAIT_MS))  # type: ignore[arg-type]
        self._replicas = replicas

    async def _run(self, command: bytes) -> Any:
        connections = self._client.script_connections
        connection, _ = await connections.take()
        try:
            await connection.send_packed_command(command + self._wait)
            try:
                answer: Any = await connection.read_response()
            except ResponseError as exc:
                answer = exc
            replicas = await connection.read_response()
        except BaseException:
            await connections.drop(connection)
            raise
        connections.give_back(connection)
        return _waited(answer, replicas, self._replicas)
