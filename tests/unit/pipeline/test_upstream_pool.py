"""The forwarding client (upstream.py) against real servers on loopback: raw asyncio servers that answer exactly what
each case needs (counting connections and requests), aiohttp.web for plain answers, the dev PKI for https.

Pools here allow one connection unless a case needs more, so a failure that leaked its slot shows up as the next call
waiting out its timeout instead of being answered."""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support.ports import free_port

from gateway.pipeline import upstream
from gateway.pipeline.upstream import Unanswered, Unavailable, UpstreamPool

TIMEOUT = 2.0  # a call's total time where the case is not about timing
# (connection number, request number on it, raw request) -> keep the connection open?
Answer = Callable[[int, int, bytes, asyncio.StreamWriter], Awaitable[bool]]


def _http(body: bytes = b"ok", *headers: str, status: str = "200 OK", version: str = "HTTP/1.1") -> bytes:
    """An answer with a Content-Length and the given header lines."""
    lines = [f"{version} {status}", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's head and Content-Length body as sent; None when the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                       if line.startswith(b"content-length:")), 0)
        return head + await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None


class RawBank:
    """A back-end on loopback whose `answer` writes raw bytes; counts connections and keeps each request as sent."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self.accepts = 0
        self.open = 0         # connections open now
        self.peak = 0         # most connections open at once
        self.requests: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawBank:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepts += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        connection, nth = self.accepts, 0
        try:
            while (request := await _read_request(reader)) is not None:
                nth += 1
                self.requests.append(request)
                if not await self._answer(connection, nth, request, writer):
                    break
                await writer.drain()
        except ConnectionError:
            pass
        except asyncio.CancelledError:
            pass  # the test is over; Python 3.11's start_server would log a cancelled handler as an error
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _numbered(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    """Answers every request with the number of the connection it came on."""
    writer.write(_http(str(connection).encode()))
    return True


@contextlib.asynccontextmanager
async def _pool(url: str, max_connections: int = 1, tls: ssl.SSLContext | None = None,
                connect_timeout: float = 1.0) -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool(url, max_connections, connect_timeout, tls)
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def _aiohttp_bank(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                        tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """An aiohttp.web back-end answering every path with `handler`; yields its port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def _run(scenario: Coroutine[Any, Any, Any]) -> Any:
    """Runs one case on a fresh loop, bounded in time."""
    async def bounded() -> Any:
        async with asyncio.timeout(15):
            return await scenario
    return asyncio.run(bounded())


async def _until(predicate: Callable[[], bool]) -> None:
    """Waits (at most a second) for what the server sees to catch up with what the client did."""
    for _ in range(100):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server never saw it")


async def _get(pool: UpstreamPool, url: str, timeout: float = TIMEOUT) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return await pool.request("GET", url, [], b"", timeout)


def _head(request: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """(request line, headers, body) of a raw request; a header sent twice would be lost, so it is refused."""
    head, _, body = request.partition(b"\r\n\r\n")
    line, *fields = head.split(b"\r\n")
    headers = dict(field.split(b": ", 1) for field in fields)
    assert len(headers) == len(fields), f"a header was sent twice: {fields}"
    return line, headers, body


# A whole answer


def test_a_whole_answer_gives_the_status_the_headers_lower_cased_and_the_body():
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=201, body=b'{"Data": {}}', content_type="application/json",
                            headers={"X-Bank-Trace": "Abc-1"})

    async def scenario() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        async with _aiohttp_bank(handler) as port, _pool(f"http://127.0.0.1:{port}") as pool:
            return await _get(pool, f"http://127.0.0.1:{port}/accounts")

    status, headers, body = _run(scenario())
    assert (status, body) == (201, b'{"Data": {}}')
    assert (b"x-bank-trace", b"Abc-1") in headers and dict(headers)[b"content-length"] == b"12"
    assert all(name == name.lower() for name, _ in headers)


def test_a_chunked_answer_arriving_in_pieces_is_read_whole():
    pieces = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-bank-", b"trace: a", b"bc\r\n\r\n",
              b"5\r\nhello\r\n", b"6\r\n wor", b"ld\r\n", b"0\r\n\r\n"]

    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        return True

    async def scenario() -> tuple[Any, Any, int]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            first, second = await _get(pool, bank.url + "/a"), await _get(pool, bank.url + "/b")
            return first, second, bank.accepts

    (status, headers, body), second, accepts = _run(scenario())
    assert (status, body) == (200, b"hello world") and (b"x-bank-trace", b"abc") in headers
    assert second[2] == b"hello world" and accepts == 1  # a chunked answer ends cleanly: the connection is kept


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_gzip_and_deflate_answers_are_decoded(coding):
    text = b'{"Data": {"Account": []}}' * 50
    encoded = gzip.compress(text) if coding == "gzip" else zlib.compress(text)

    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_http(encoded, f"content-encoding: {coding.upper()}"))
        return True

    async def scenario() -> bytes:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            return (await _get(pool, bank.url + "/"))[2]

    assert _run(scenario()) == text


@pytest.mark.parametrize(("coding", "body"), [("br", b"\x1b\x03\x00\xf8\xa5bc"), ("gzip", b"not gzip at all"),
                                              ("deflate", b"not deflate")],
                         ids=["unknown coding", "bad gzip", "bad deflate"])
def test_an_answer_that_cannot_be_decoded_is_unanswered(coding, body):
    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_http(body, f"content-encoding: {coding}") if (connection, nth) == (1, 1) else _http(b"next"))
        return True

    async def scenario() -> tuple[str, bytes]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            with pytest.raises(Unanswered) as refused:
                await _get(pool, bank.url + "/")
            return str(refused.value), (await _get(pool, bank.url + "/"))[2]

    message, following = _run(scenario())
    assert coding in message and following == b"next"


@pytest.mark.parametrize(("size", "answered"), [(1000, True), (1001, False)])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_answer_over_max_body_bytes_is_refused(monkeypatch, size, answered, framing):
    monkeypatch.setattr(upstream, "MAX_BODY_BYTES", 1000)
    body = b"x" * size

    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if (connection, nth) != (1, 1):
            writer.write(_http(b"next"))
        elif framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for start in range(0, size, 300):
                piece = body[start:start + 300]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(_http(body))
        return True

    async def scenario() -> tuple[bytes | Unanswered, bytes]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            try:
                first: bytes | Unanswered = (await _get(pool, bank.url + "/"))[2]
            except Unanswered as refused:
                first = refused
            return first, (await _get(pool, bank.url + "/"))[2]

    first, following = _run(scenario())
    if answered:
        assert first == body
    else:
        assert isinstance(first, Unanswered) and "over 1000 bytes" in str(first)
    assert following == b"next"  # the slot is free again


def test_a_gzip_answer_that_decodes_over_max_body_bytes_is_refused(monkeypatch):
    monkeypatch.setattr(upstream, "MAX_BODY_BYTES", 1000)
    bomb = gzip.compress(bytes(200_000))
    assert len(bomb) < 1000

    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_http(bomb, "content-encoding: gzip"))
        return True

    async def scenario() -> None:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            with pytest.raises(Unanswered):
                await _get(pool, bank.url + "/")

    _run(scenario())


def test_an_answer_delimited_by_the_bank_closing_is_whole():
    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nthe whole body")
        return False

    async def scenario() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            return await _get(pool, bank.url + "/")

    assert _run(scenario())[2] == b"the whole body"


@pytest.mark.parametrize("interim", [b"HTTP/1.1 100 Continue\r\n\r\n",
                                     b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"],
                         ids=["100", "103"])
def test_an_interim_answer_is_skipped_for_the_final_one(interim):
    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(interim)
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(_http(b"final"))
        return True

    async def scenario() -> tuple[int, bytes]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            status, _, body = await _get(pool, bank.url + "/")
            return status, body

    assert _run(scenario()) == (200, b"final")


# Keep-alive


def test_sequential_calls_share_one_connection():
    async def scenario() -> tuple[list[bytes], int]:
        async with RawBank(_numbered) as bank, _pool(bank.url, max_connections=4) as pool:
            bodies = [(await _get(pool, bank.url + f"/{n}"))[2] for n in range(3)]
            return bodies, bank.accepts

    assert _run(scenario()) == ([b"1", b"1", b"1"], 1)


@pytest.mark.parametrize("answer_bytes", [_http(b"bye", "connection: close"), _http(b"bye", version="HTTP/1.0")],
                         ids=["connection close", "HTTP/1.0"])
def test_an_answer_that_does_not_keep_the_connection_alive_makes_the_next_call_open_another(answer_bytes):
    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer_bytes)
        await writer.drain()
        await asyncio.sleep(0.5)  # the bank is slow to close: the gateway must not wait for it
        return False

    async def scenario() -> tuple[list[bytes], int, int]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            first = (await _get(pool, bank.url + "/"))[2]
            # A POST is never sent again: had it gone on the closing connection, it would be Unanswered.
            second = (await pool.request("POST", bank.url + "/payments", [], b"{}", TIMEOUT))[2]
            return [first, second], bank.accepts, len(bank.requests)

    assert _run(scenario()) == ([b"bye", b"bye"], 2, 2)


def test_an_idle_connection_older_than_idle_seconds_is_closed_not_reused(monkeypatch):
    monkeypatch.setattr(upstream, "IDLE_SECONDS", 0.1)

    async def scenario() -> tuple[list[bytes], int]:
        async with RawBank(_numbered) as bank, _pool(bank.url) as pool:
            first = (await _get(pool, bank.url + "/"))[2]
            await asyncio.sleep(0.2)
            second = (await _get(pool, bank.url + "/"))[2]
            await _until(lambda: bank.open == 1)  # the stale connection was closed by the gateway
            return [first, second], bank.accepts

    assert _run(scenario()) == ([b"1", b"2"], 2)


def test_a_kept_connection_the_bank_closed_while_idle_is_dropped_and_a_post_goes_once_on_a_new_one():
    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_http(str(connection).encode()))
        await writer.drain()
        await asyncio.sleep(0.05)  # the bank's own idle timeout, shorter than the gateway's
        return False

    async def scenario() -> tuple[bytes, bytes, list[bytes], int]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            first = (await _get(pool, bank.url + "/"))[2]
            await _until(lambda: bank.open == 0)
            await asyncio.sleep(0.05)  # the gateway's loop sees the close
            second = (await pool.request("POST", bank.url + "/payments", [], b"{}", TIMEOUT))[2]
            return first, second, [r for r in bank.requests if r.startswith(b"POST")], bank.accepts

    first, second, posts, accepts = _run(scenario())
    assert (first, second, len(posts), accepts) == (b"1", b"2", 1, 2)


def test_closing_the_pool_closes_its_idle_connections():
    async def scenario() -> tuple[int, int]:
        async with RawBank(_numbered) as bank:
            async with _pool(bank.url, max_connections=2) as pool:
                await asyncio.gather(_get(pool, bank.url + "/a"), _get(pool, bank.url + "/b"))
                opened = bank.open
            await _until(lambda: bank.open == 0)
            return opened, bank.accepts

    assert _run(scenario()) == (2, 2)


# A kept connection the bank dropped as it was reused


async def _drops_kept(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    """The first connection answers its first request and closes on the next without a byte; later ones answer."""
    if connection == 1 and nth == 2:
        return False
    writer.write(_http(str(connection).encode()))
    return True


def test_a_get_on_a_kept_connection_the_bank_dropped_is_sent_again_once_on_a_fresh_one():
    async def scenario() -> tuple[bytes, int, int]:
        async with RawBank(_drops_kept) as bank, _pool(bank.url) as pool:
            await _get(pool, bank.url + "/")
            body = (await _get(pool, bank.url + "/again"))[2]
            return body, bank.accepts, len(bank.requests)

    assert _run(scenario()) == (b"2", 2, 3)


def test_a_get_is_sent_again_only_once():
    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if connection > 1 or nth > 1:
            return False
        writer.write(_http())
        return True

    async def scenario() -> tuple[int, int]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            await _get(pool, bank.url + "/")
            with pytest.raises(Unanswered):
                await _get(pool, bank.url + "/")
            return bank.accepts, len(bank.requests)

    assert _run(scenario()) == (2, 3)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_non_idempotent_call_on_a_dropped_kept_connection_is_not_sent_again(method):
    async def scenario() -> tuple[int, int, bytes]:
        async with RawBank(_drops_kept) as bank, _pool(bank.url) as pool:
            await _get(pool, bank.url + "/")
            with pytest.raises(Unanswered):
                await pool.request(method, bank.url + "/payments", [], b'{"Data": {}}', TIMEOUT)
            sent = sum(r.startswith(method.encode()) for r in bank.requests)
            return sent, bank.accepts, (await _get(pool, bank.url + "/"))[2]

    assert _run(scenario()) == (1, 1, b"2")


# Failures


def test_nothing_listening_is_unavailable_and_frees_the_slot():
    async def scenario() -> None:
        url = f"http://127.0.0.1:{free_port()}"
        async with _pool(url) as pool:
            for _ in range(2):  # a leaked slot would make the second call wait, then time out
                with pytest.raises(Unavailable, match="cannot connect"):
                    await _get(pool, url + "/")

    _run(scenario())


def test_a_bank_that_accepts_but_never_completes_the_tls_handshake_is_unavailable_after_the_connect_timeout(pki):
    async def scenario() -> float:
        async with RawBank(_numbered) as bank:  # it speaks plain HTTP, so it waits for a request the ClientHello is not
            https = bank.url.replace("http:", "https:")
            async with _pool(https, tls=ssl.create_default_context(cafile=pki / "ca.pem"), connect_timeout=0.3) as pool:
                started = time.monotonic()
                with pytest.raises(Unavailable, match="cannot connect"):
                    await _get(pool, https + "/", timeout=5.0)
                return time.monotonic() - started

    assert 0.3 <= _run(scenario()) < 1.0


def test_a_bank_that_never_answers_times_out_within_the_timeout_and_its_connection_is_not_reused():
    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if connection > 1:  # the first one reads the request and says nothing, ever
            writer.write(_http(str(connection).encode()))
        return True

    async def scenario() -> tuple[float, bytes, int]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await _get(pool, bank.url + "/", timeout=0.3)
            elapsed = time.monotonic() - started
            await _until(lambda: bank.open == 0)  # the gateway closed the connection it gave up on
            return elapsed, (await _get(pool, bank.url + "/"))[2], bank.accepts

    elapsed, body, accepts = _run(scenario())
    assert 0.3 <= elapsed < 1.0 and (body, accepts) == (b"2", 2)


@pytest.mark.parametrize("partial", [
    b"HTTP/1.1 200 OK\r\ncontent-len",
    b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n",
], ids=["in the headers", "in a sized body", "in a chunked body"])
def test_the_bank_closing_mid_answer_is_unanswered_and_not_sent_again(partial):
    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if connection == 1 and nth == 2:
            writer.write(partial)
            return False
        writer.write(_http(str(connection).encode()))
        return True

    async def scenario() -> tuple[int, bytes]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            await _get(pool, bank.url + "/")
            with pytest.raises(Unanswered, match="closed before a whole answer"):
                await _get(pool, bank.url + "/")  # idempotent, but the bank had begun answering: not sent again
            return len(bank.requests), (await _get(pool, bank.url + "/"))[2]

    assert _run(scenario()) == (2, b"2")


@pytest.mark.parametrize("garbage", [
    pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", id="not HTTP"),
    pytest.param(b"HTTP/1.1 2x0 OK\r\n\r\n", id="bad status"),
    pytest.param(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", id="bad length"),
    pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
                 id="upgrade nobody asked for"),
])
def test_garbage_instead_of_http_is_unanswered(garbage):
    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(garbage if connection == 1 else _http())
        return True

    async def scenario() -> bytes:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            with pytest.raises(Unanswered, match="not HTTP/1.1"):
                await _get(pool, bank.url + "/")
            return (await _get(pool, bank.url + "/"))[2]

    assert _run(scenario()) == b"ok"


# At most max_connections


async def _slow(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    await asyncio.sleep(0.2)
    writer.write(_http(str(connection).encode()))
    return True


def test_a_call_past_max_connections_waits_then_reuses_the_connection():
    async def scenario() -> tuple[list[bytes], float, int, int]:
        async with RawBank(_slow) as bank, _pool(bank.url) as pool:
            started = time.monotonic()
            answers = await asyncio.gather(_get(pool, bank.url + "/a"), _get(pool, bank.url + "/b"))
            return [body for _, _, body in answers], time.monotonic() - started, bank.accepts, bank.peak

    bodies, elapsed, accepts, peak = _run(scenario())
    assert bodies == [b"1", b"1"] and (accepts, peak) == (1, 1) and elapsed >= 0.4


def test_many_concurrent_calls_never_open_more_than_max_connections():
    async def scenario() -> tuple[list[int], int]:
        async with RawBank(_slow) as bank, _pool(bank.url, max_connections=2) as pool:
            answers = await asyncio.gather(*(_get(pool, bank.url + f"/{n}") for n in range(5)))
            return [status for status, _, _ in answers], bank.peak

    assert _run(scenario()) == ([200] * 5, 2)


def test_a_call_waiting_for_a_connection_past_its_timeout_is_unavailable_as_nothing_was_sent():
    """A payment's outcome is unknown only if the request may have reached the bank: not this one."""
    async def scenario() -> tuple[bytes, bytes, int]:
        async with RawBank(_slow) as bank, _pool(bank.url) as pool:
            first = asyncio.create_task(_get(pool, bank.url + "/slow"))
            await _until(lambda: len(bank.requests) == 1)
            with pytest.raises(Unavailable, match="no connection"):
                await _get(pool, bank.url + "/impatient", timeout=0.05)
            assert not pool._waiting  # the timed-out caller left the queue
            return (await first)[2], (await _get(pool, bank.url + "/"))[2], bank.accepts

    assert _run(scenario()) == (b"1", b"1", 1)


def test_a_woken_waiter_that_is_cancelled_passes_the_connection_on(monkeypatch):
    async def scenario() -> bytes:
        async with RawBank(_slow) as bank, _pool(bank.url) as pool:
            holder = asyncio.create_task(_get(pool, bank.url + "/holder"))
            await _until(lambda: len(bank.requests) == 1)
            woken = asyncio.create_task(_get(pool, bank.url + "/woken"))
            await asyncio.sleep(0.01)
            next_in_line = asyncio.create_task(_get(pool, bank.url + "/next", timeout=1.0))
            await asyncio.sleep(0.01)
            decoded = upstream._decoded

            def cancel_the_woken(headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
                # Runs in the holder's call right after it gave the connection back (and woke `woken`).
                woken.cancel()
                return decoded(headers, body)

            monkeypatch.setattr(upstream, "_decoded", cancel_the_woken)
            await holder
            with pytest.raises(asyncio.CancelledError):
                await woken
            return (await next_in_line)[2]

    assert _run(scenario()) == b"1"


# What is sent


@pytest.mark.parametrize(("method", "body", "length"), [
    ("GET", b"", None), ("DELETE", b"", None), ("POST", b'{"Data": {}}', b"12"), ("POST", b"", b"0"),
    ("PUT", b"", b"0"),
])
def test_the_request_line_and_headers_as_sent(method, body, length):
    async def scenario() -> tuple[bytes, int]:
        async with RawBank(_numbered) as bank, _pool(bank.url) as pool:
            await pool.request(method, bank.url + "/open-banking/v3.1/aisp/accounts?from=2024-01-01&q=a%20b",
                               [(b"x-fapi-interaction-id", b"93bac548")], body, TIMEOUT)
            return bank.requests[0], bank.port

    request, port = _run(scenario())
    line, headers, sent = _head(request)
    assert line == f"{method} /open-banking/v3.1/aisp/accounts?from=2024-01-01&q=a%20b HTTP/1.1".encode()
    assert headers[b"host"] == f"127.0.0.1:{port}".encode()
    assert headers[b"x-fapi-interaction-id"] == b"93bac548"
    assert headers.get(b"content-length") == length and b"transfer-encoding" not in headers
    assert sent == body


@pytest.mark.parametrize(("rest", "target"), [
    ("", b"/"),
    pytest.param("?page=2", b"/?page=2"),
])
def test_a_url_without_a_path_is_sent_in_origin_form(rest, target):
    async def scenario() -> bytes:
        async with RawBank(_numbered) as bank, _pool(bank.url) as pool:
            await _get(pool, bank.url + rest)
            return bank.requests[0]

    assert _head(_run(scenario()))[0] == b"GET " + target + b" HTTP/1.1"


@pytest.mark.parametrize("value", [b"a\r\nx-injected: 1", b"a\nb", b"a\rb"], ids=["CRLF", "LF", "CR"])
def test_a_header_value_with_a_line_break_is_refused_and_nothing_is_sent(value):
    async def scenario() -> int:
        async with RawBank(_numbered) as bank, _pool(bank.url) as pool:
            with pytest.raises(ValueError, match="x-customer-user-agent"):
                await pool.request("GET", bank.url + "/", [(b"x-customer-user-agent", value)], b"", TIMEOUT)
            return bank.accepts

    assert _run(scenario()) == 0


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{other}/accounts", "https://127.0.0.1:{port}/accounts", "http://localhost:{port}/accounts",
    "/accounts",
    pytest.param("http://127.0.0.1:{port}1/accounts", id="longer port"),
    pytest.param("http://127.0.0.1:{port}@bank.example/accounts", id="userinfo"),
    pytest.param("http://127.0.0.1:{port}/a HTTP/1.1\r\nx-injected: 1\r\n\r\nGET /b", id="line break in the target"),
])
def test_a_url_off_the_origin_or_not_a_clean_target_is_refused_and_nothing_is_sent(url):
    async def scenario() -> int:
        async with RawBank(_numbered) as bank, _pool(bank.url) as pool:
            with pytest.raises(ValueError):
                await _get(pool, url.format(port=bank.port, other=free_port()), timeout=0.5)
            return bank.accepts

    assert _run(scenario()) == 0


# https


def test_an_https_pool_trusting_the_dev_ca_talks_to_a_tls_bank_over_one_kept_connection(pki: Path):
    async def handler(request: web.Request) -> web.Response:
        assert request.transport is not None
        return web.Response(body=str(request.transport.get_extra_info("peername")[1]).encode())  # the client port

    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki / "server.pem", pki / "server.key")
    client = ssl.create_default_context(cafile=pki / "ca.pem")

    async def scenario() -> list[tuple[int, bytes]]:
        async with _aiohttp_bank(handler, server) as port, _pool(f"https://127.0.0.1:{port}", tls=client) as pool:
            return [(status, body) for status, _, body in
                    [await _get(pool, f"https://127.0.0.1:{port}/accounts") for _ in range(2)]]

    (first, port_one), (second, port_two) = _run(scenario())
    assert (first, second) == (200, 200) and port_one == port_two


def test_bytes_no_request_asked_for_end_the_connection_so_no_call_gets_another_calls_answer():
    """A bank that sends a second answer after the first (a confused proxy, a late duplicate): the connection is
    dropped, and the next call gets its own answer on a new one, never the stray one."""
    async def answer(connection: int, nth: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_http(f"answer {connection}.{nth}".encode()))
        if nth == 1:
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(_http(b"stray answer"))
        return True

    async def scenario() -> tuple[bytes, bytes, int]:
        async with RawBank(answer) as bank, _pool(bank.url) as pool:
            first = (await _get(pool, bank.url + "/"))[2]
            await asyncio.sleep(0.2)  # the stray answer arrives while the connection is idle
            return first, (await _get(pool, bank.url + "/"))[2], bank.accepts

    assert _run(scenario()) == (b"answer 1.1", b"answer 2.1", 2)
