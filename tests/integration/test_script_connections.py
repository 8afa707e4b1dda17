"""AsyncScript on its ScriptConnections (store/redis.py) against a real redis-server: answers, NOSCRIPT, error
replies, concurrency, the connection cap, a Redis restart, a Redis outage and closing the client.

Connections are counted from the server's side (`CLIENT LIST` through a separate sync client): each async client is
given a unique `client_name`, and the script is loaded beforehand (`SCRIPT LOAD`) wherever connections are counted,
so that no NOSCRIPT sends the client's own pool to Redis and every named connection is a script connection.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis

from gateway.store.redis import (
    AsyncScript,
    ScriptConnections,
    WorkerRedis,
    async_client,
)

# Every key and argument back (ARGV[3] also as a number) and the number of each; KEYS[2] is written.
ECHO = """
redis.call('SET', KEYS[2], ARGV[2])
return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], #KEYS, #ARGV, tonumber(ARGV[3]) + 1}
"""
INCR = "return redis.call('INCR', KEYS[1])"
TAG = "return ARGV[1] .. '@' .. KEYS[1]"
ERROR_REPLY = "if ARGV[1] == 'fail' then return redis.error_reply('boom') end return 'ok'"
LUA_ERROR = "if ARGV[1] == 'fail' then error('boom') end return 'ok'"
# Holds Redis (and the connection it runs on) for ARGV[1] ms, then answers ARGV[2].
BUSY = """
local function now() local t = redis.call('TIME') return tonumber(t[1]) * 1000000 + tonumber(t[2]) end
local deadline = now() + tonumber(ARGV[1]) * 1000
while now() < deadline do end
return ARGV[2]
"""


@pytest.fixture
def observer(redis_url):
    """A plain sync client on the emptied session Redis, apart from the clients under test."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _load(url: str, source: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.script_load(source)


def _named_client(url: str, name: str, **kwargs) -> WorkerRedis:
    return async_client(f"{url}{'&' if '?' in url else '?'}client_name={name}", **kwargs)


def _connections(observer: redis.Redis, name: str) -> set[str]:
    """The ids of the connections Redis has open for clients named `name`."""
    return {client["id"] for client in observer.client_list() if client.get("name") == name}


def _name() -> str:
    return f"scripts-{uuid.uuid4().hex[:12]}"


def test_a_script_runs_with_str_bytes_and_int_keys_and_args_and_returns_redis_answer(redis_url, observer):
    async def scenario():
        client = async_client(redis_url)
        try:
            return await AsyncScript(client, ECHO)(keys=["key:str", b"key:bytes"], args=["text", b"\x00\xff", 42])
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == [b"key:str", b"key:bytes", b"text", b"\x00\xff", b"42", 2, 3, 43]
    assert observer.get(b"key:bytes") == b"\x00\xff"


def test_the_scripts_sha_is_the_one_redis_gives_its_source_even_when_not_ascii(redis_url, observer):
    source = "-- café, naïve: UTF-8 bytes are what Redis hashes\nreturn 1"

    async def scenario():
        client = async_client(redis_url)
        try:
            return AsyncScript(client, source).sha
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == observer.script_load(source)


def test_after_script_flush_the_next_call_loads_the_script_and_runs_it_exactly_once(redis_url, observer):
    async def scenario():
        client = async_client(redis_url)
        script = AsyncScript(client, INCR)
        try:
            assert await script(keys=["before"]) == 1
            observer.script_flush()  # the script cache is gone, as after a Redis restart
            assert observer.script_exists(script.sha) == [False]
            return script.sha, await script(keys=["after"])
        finally:
            await client.aclose()

    sha, answer = asyncio.run(scenario())
    assert answer == 1
    assert observer.get("after") == b"1"  # NOSCRIPT did not run it; the run after SCRIPT LOAD ran it once
    assert observer.script_exists(sha) == [True]


@pytest.mark.parametrize("source", [ERROR_REPLY, LUA_ERROR], ids=["error_reply", "lua-error"])
def test_a_lua_error_raises_response_error_and_the_same_connection_serves_the_next_call(redis_url, observer,
                                                                                       source):
    name = _name()
    observer.script_load(source)

    async def scenario():
        client = _named_client(redis_url, name)
        script = AsyncScript(client, source)
        try:
            assert await script(args=["ok"]) == b"ok"
            before = _connections(observer, name)
            with pytest.raises(redis.ResponseError, match="boom") as caught:
                await script(args=["fail"])
            answer = await script(args=["ok"])
            return before, caught.value, answer, _connections(observer, name)
        finally:
            await client.aclose()

    before, error, answer, after = asyncio.run(scenario())
    assert not isinstance(error, redis.exceptions.NoScriptError)
    assert answer == b"ok"
    assert len(before) == 1
    assert after == before  # kept after the error reply: no new connection


def test_50_concurrent_calls_answer_right_on_at_most_50_connections_that_a_second_round_reuses(redis_url,
                                                                                               observer):
    name = _name()
    observer.script_load(TAG)

    async def round_of_50(script: AsyncScript, tag: str) -> list:
        return await asyncio.gather(*(script(keys=[f"key{i}"], args=[f"{tag}{i}"]) for i in range(50)))

    async def scenario():
        client = _named_client(redis_url, name)
        script = AsyncScript(client, TAG)
        try:
            first = await round_of_50(script, "first")
            opened = _connections(observer, name)
            second = await round_of_50(script, "second")
            return first, opened, second, _connections(observer, name)
        finally:
            await client.aclose()

    first, opened, second, reopened = asyncio.run(scenario())
    assert first == [f"first{i}@key{i}".encode() for i in range(50)]
    assert second == [f"second{i}@key{i}".encode() for i in range(50)]
    assert 1 <= len(opened) <= 50
    assert reopened == opened  # the idle connections served the second round: none was opened


def test_with_max_connections_2_a_third_call_in_flight_fails_while_two_succeed(redis_url, observer):
    observer.script_load(BUSY)

    async def scenario():
        client = async_client(redis_url, max_connections=2)
        script = AsyncScript(client, BUSY)
        busy: list[asyncio.Task] = []
        try:
            for round_ in ("first", "second"):  # the second round: both connections were handed back, no more
                busy = [asyncio.create_task(script(args=[200, f"{round_}-{i}"])) for i in range(2)]
                await asyncio.sleep(0.05)  # both sent: Redis runs one for 200 ms, the other waits behind it
                with pytest.raises(redis.exceptions.MaxConnectionsError):
                    await script(args=[0, "third"])
                assert not any(task.done() for task in busy)  # it failed while the two were in flight
                assert await asyncio.gather(*busy) == [f"{round_}-0".encode(), f"{round_}-1".encode()]
            return await asyncio.gather(script(args=[0, "later-0"]), script(args=[0, "later-1"]))
        finally:
            await asyncio.gather(*busy, return_exceptions=True)
            await client.aclose()

    assert asyncio.run(scenario()) == [b"later-0", b"later-1"]


def test_a_call_cancelled_mid_answer_drops_its_connection_so_the_next_call_gets_its_own_answer(redis_url,
                                                                                               observer):
    observer.script_load(BUSY)

    async def scenario():
        client = async_client(redis_url)
        script = AsyncScript(client, BUSY)
        try:
            cancelled = asyncio.create_task(script(args=[200, "late"]))
            await asyncio.sleep(0.05)  # sent: Redis will answer "late" on that connection when the loop ends
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            return await script(args=[0, "mine"])
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == b"mine"


def test_drop_disconnects_the_failed_connection_and_every_idle_one(redis_url):
    async def scenario():
        client = async_client(redis_url)
        connections: ScriptConnections = client.script_connections
        try:
            taken = [(await connections.take())[0] for _ in range(3)]
            connections.give_back(taken[0])
            connections.give_back(taken[1])
            await connections.drop(taken[2])
            after, reused = await connections.take()  # none idle is left: a new one
            connections.give_back(after)
            return [each.is_connected for each in taken], after in taken, reused
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == ([False, False, False], False, False)


def test_after_a_redis_restart_the_first_call_succeeds_on_a_fresh_connection(server):
    name = _name()
    _load(server.url, INCR)

    async def scenario():
        client = _named_client(server.url, name)
        script = AsyncScript(client, INCR)
        try:
            before = sorted(await asyncio.gather(*(script(keys=["count"]) for _ in range(3))))
            with redis.Redis.from_url(server.url) as observer:
                idle = len(_connections(observer, name))
            server.stop()
            server.start()  # same port, password and data (append-only file); an empty script cache
            first = await script(keys=["count"])
            rest = sorted(await asyncio.gather(*(script(keys=["count"]) for _ in range(3))))
            return before, idle, first, rest
        finally:
            await client.aclose()

    before, idle, first, rest = asyncio.run(scenario())
    assert before == [1, 2, 3]
    assert idle == 3  # three stale connections after the restart: a retry on a second stale one would fail
    assert first == 4  # dead connection, fresh one, NOSCRIPT, SCRIPT LOAD, run: once
    assert rest == [5, 6, 7]


def test_with_redis_down_a_call_fails_closed_with_connection_error_and_works_again_after_start(server):
    async def scenario():
        client = async_client(server.url, max_connections=1)  # a connection not handed back would be seen
        script = AsyncScript(client, INCR)
        try:
            assert await script(keys=["count"]) == 1
            server.stop()
            errors, durations = [], []
            for _ in range(2):  # on the idle (now dead) connection, then with none idle
                started = time.monotonic()
                with pytest.raises(redis.ConnectionError) as caught:
                    await script(keys=["count"])
                durations.append(time.monotonic() - started)
                errors.append(caught.value)
            server.start()
            return errors, durations, await script(keys=["count"])
        finally:
            await client.aclose()

    errors, durations, answer = asyncio.run(scenario())
    assert not any(isinstance(error, redis.exceptions.MaxConnectionsError) for error in errors)
    assert max(durations) < 2.0
    assert answer == 2


def test_aclose_disconnects_the_idle_script_connections(redis_url, observer):
    name = _name()
    observer.script_load(TAG)

    async def scenario():
        client = _named_client(redis_url, name)
        script = AsyncScript(client, TAG)
        await asyncio.gather(*(script(keys=["key"], args=[str(i)]) for i in range(3)))
        opened = _connections(observer, name)
        await client.aclose()
        # The client (and so its connection objects) is still referenced here: only aclose can have closed them.
        deadline = time.monotonic() + 2.0
        while (left := _connections(observer, name)) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # Redis sees each close on its next turn of its event loop
        return opened, left, client

    opened, left, _ = asyncio.run(scenario())
    assert len(opened) == 3
    assert left == set()


def test_a_script_that_outlives_the_socket_timeout_fails_closed_and_is_not_run_twice(redis_url):
    """A timeout may come after Redis ran the script (admission charged, a payment claimed): never retried."""
    key = f"slow-{_name()}"
    slow = "redis.call('INCR', KEYS[1])" + BUSY  # counts its runs, then holds Redis past the 2 s socket timeout

    async def scenario():
        client = async_client(redis_url)
        try:
            started = time.monotonic()
            with pytest.raises(redis.TimeoutError):
                await AsyncScript(client, slow)(keys=[key], args=[2300, "done"])
            return time.monotonic() - started
        finally:
            await client.aclose()

    elapsed = asyncio.run(scenario())
    time.sleep(1.0)  # let the script finish in Redis
    check = redis.Redis.from_url(redis_url)
    try:
        assert check.get(key) == b"1"
    finally:
        check.close()
    assert elapsed < 3.5  # one socket timeout (2 s), not two
