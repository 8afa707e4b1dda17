"""The forwarding client: kept-alive HTTP/1.1 connections to one back-end service, parsed by httptools (C).

Why not aiohttp's ClientSession: measured on this machine, its request and response objects, timers, cookie and
trace hooks cost ~45 µs of a worker's CPU per call, against ~8 µs here for the same exchange — a sixth of what the
whole pipeline spends. The gateway needs little of HTTP as a client: one request at a time per connection, a body
it already holds, an answer read whole. What it must not get wrong is kept here, in one place:

- A connection is reused only after a whole answer that keeps it alive (`should_keep_alive`), never after a
  timeout, an error, a half-read answer or bytes no request asked for; one idle for `IDLE_SECONDS`, or that the bank
  closed, is closed and dropped when next taken. Interim 1xx answers are skipped (RFC 9110 §15.2); an answer with
  no length ends when the bank closes (RFC 9112 §6.3).
- The outcome of a failure is told apart, because a payment's depends on it: `Unavailable` (no connection, or
  none free within the time, so nothing was sent), `Unanswered` (sent, no whole answer: the bank may have acted),
  TimeoutError (the call's total time ran out once sent). A request on a kept connection that the bank had
  already closed (nothing received) is sent again on another one only when its method is idempotent (RFC 9110
  §9.2.2), as aiohttp does.
- At most `max_connections` at once (services.yaml); a call past them waits for one, within its timeout.
- The answer's body is bounded (`MAX_BODY_BYTES`, decoded or not); gzip and deflate answers are decoded, since no
  proxy-side cache or client should see codings the TPP did not ask for. The request line and headers are checked
  for what would split them (a space or control character in the target, CR or LF in a value): refused unsent.
"""
from __future__ import annotations

import asyncio
import re
import ssl
import time
import zlib
from collections import deque
from urllib.parse import urlsplit

import httptools

IDLE_SECONDS = 30.0
MAX_BODY_BYTES = 32 * 1024 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_NOT_A_TARGET = re.compile(r"[\x00-\x20\x7f]")  # a space or a control character would split the request line


class Unavailable(Exception):
    """No connection could be made: nothing was sent."""


class Unanswered(Exception):
    """The request was (or may have been) sent and no whole answer came back."""


class _Connection(asyncio.Protocol):
    """One connection; one exchange at a time. The parser calls back into it as bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = 0.0           # time.monotonic() of the last whole answer
        self._waiter: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self.received = False     # any byte of the current answer
        self._until_close = False  # the answer has no length: the bank's close ends it (RFC 9112 §6.3)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes no request asked for: whatever follows cannot be matched to a call
            self.close()
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(Unanswered(f"the answer is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None and self._until_close:
            self.on_message_complete()
        self._fail(Unanswered("the connection closed before a whole answer"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        names = {name for name, _ in self._headers}
        self._until_close = b"content-length" not in names and b"transfer-encoding" not in names

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_BODY_BYTES:
            self._fail(Unanswered(f"the answer is over {MAX_BODY_BYTES} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._parser.get_status_code() < 200:  # interim (RFC 9110 §15.2): the final answer follows
            self._headers, self._body, self._size = [], [], 0
            return
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if not self._parser.should_keep_alive():
            self.close()
        self.used = time.monotonic()
        waiter.set_result((self._parser.get_status_code(), self._headers, b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        self.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def exchange(self, request: bytes) -> asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        assert self.transport is not None and self._waiter is None
        self._headers, self._body, self._size, self.received, self._until_close = [], [], 0, False, False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter


class UpstreamPool:
    """Kept-alive connections to one service URL (`http://` or `https://` with `tls`, an ssl.SSLContext)."""

    def __init__(self, url: str, max_connections: int, connect_timeout: float,
                 tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        self.origin = f"{parts.scheme}://{parts.netloc}"  # what a target URL starts with; the rest is sent
        self.host = parts.hostname or ""
        secure = parts.scheme == "https"
        self.port = parts.port or (443 if secure else 80)
        self._tls = (tls or ssl.create_default_context()) if secure else None
        self._host_header = parts.netloc.encode("idna")
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def request(self, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes,
                      timeout: float) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """(status, headers with lower-case names, body) of one exchange with `url` (on this pool's origin), within
        `timeout` seconds in all. A header value holding CR or LF is refused (ValueError), never sent."""
        target = url[len(self.origin):]
        if not url.startswith(self.origin) or target[:1] not in ("", "/", "?"):
            raise ValueError(f"{url} is not on {self.origin}")
        if _NOT_A_TARGET.search(target):
            raise ValueError(f"the target {target!r} holds a space or a control character")
        if not target.startswith("/"):
            target = "/" + target
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"),
                b"host: ", self._host_header, b"\r\n"]
        for name, value in headers:
            if b"\r" in value or b"\n" in value:
                raise ValueError(f"the header {name!r} holds a line break")
            head += (name, b": ", value, b"\r\n")
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            head += (b"content-length: ", str(len(body)).encode(), b"\r\n")
        head += (b"accept-encoding: gzip, deflate\r\n\r\n", body)
        request = b"".join(head)
        sent = False
        try:
            async with asyncio.timeout(timeout):
                for attempt in (1, 2):
                    connection, reused = await self._take()
                    sent = True
                    try:
                        status, answer_headers, answer = await connection.exchange(request)
                    except Unanswered:
                        self._lost(connection)
                        # The bank had closed a kept connection as it was taken: nothing reached it. Only a request
                        # that may be repeated goes again (once, on another connection).
                        if attempt == 1 and reused and not connection.received and method in IDEMPOTENT:
                            continue
                        raise
                    except BaseException:  # the timeout, a cancelled call: the connection is out of step
                        connection.close()
                        self._lost(connection)
                        raise
                    self._give_back(connection)
                    return status, answer_headers, _decoded(answer_headers, answer)
        except TimeoutError:
            if not sent:  # the time ran out waiting for a connection: nothing reached the bank
                raise Unavailable(f"no connection to {self.host}:{self.port} within {timeout} s") from None
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _take(self) -> tuple[_Connection, bool]:
        while True:
            now = time.monotonic()
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed and now - connection.used < IDLE_SECONDS:
                    return connection, True
                connection.close()
                self._open -= 1
            if self._open < self._max:
                self._open += 1
                try:
                    return await self._connect(), False
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken but leaving: the wake-up goes to the next in line
                raise
            finally:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self._tls,
                    server_hostname=self.host if self._tls is not None else None)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise Unavailable(f"cannot connect to {self.host}:{self.port}: {str(exc) or type(exc).__name__}") from None
        return connection

    def _give_back(self, connection: _Connection) -> None:
        if self._closed:  # the pool closed while this exchange ran
            connection.close()
        if connection.closed:
            self._open -= 1
        else:
            self._idle.append(connection)
        self._wake()

    def _lost(self, connection: _Connection) -> None:
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close the idle connections now, and those in use as their exchanges end."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        self._open -= len(idle)


def _decoded(headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    coding = next((value.strip().lower() for name, value in headers if name == b"content-encoding"), b"identity")
    try:
        if coding in (b"gzip", b"deflate"):
            return _inflated(body, 16 + zlib.MAX_WBITS if coding == b"gzip" else zlib.MAX_WBITS)
    except zlib.error as exc:
        raise Unanswered(f"the answer's {coding.decode('latin-1')} body does not decode: {exc}") from None
    if coding != b"identity":
        raise Unanswered(f"the answer is in a content coding the gateway did not ask for: {coding!r}")
    return body


def _inflated(body: bytes, wbits: int) -> bytes:
    """The decoded body, bounded like the encoded one (a small gzip answer may decode to gigabytes)."""
    inflater = zlib.decompressobj(wbits)
    decoded = inflater.decompress(body, MAX_BODY_BYTES + 1)
    if len(decoded) > MAX_BODY_BYTES:
        raise Unanswered(f"the answer decodes to over {MAX_BODY_BYTES} bytes")
    if not inflater.eof:
        raise zlib.error("the stream is incomplete")
    return decoded
