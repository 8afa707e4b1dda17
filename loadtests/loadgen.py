"""The benchmark's load generator: HTTP/1.1 keep-alive connections over asyncio streams, with a client certificate.

Why not locust or wrk: wrk cannot present a client certificate, and locust spends ~10x the CPU per request of this
loop, which on two shared cores would measure locust. Here a request is pre-built bytes written to a kept-alive
connection and an answer is a status line, headers and a Content-Length body read back: ~30-60 µs of CPU per call
(each run reports its own CPU time, so the table shows the generator is not the bottleneck).

Two modes, the same code:
- closed loop (`rate=None`): `connections` connections each send the next request as soon as the last is answered,
  for `duration` seconds: the throughput a variant can sustain;
- open loop (`rate=R`): requests are due at fixed times (R per second) and latency runs from the time a request was
  due, so a slow answer cannot hide the requests queued behind it (no coordinated omission).

Every request that is started is finished: at the deadline no new request starts and those in flight complete, so
`sent` is exact and can be compared with the gateway's audit records.
"""
from __future__ import annotations

import asyncio
import resource
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field


class ProtocolError(Exception):
    """The server's answer was not a complete HTTP/1.1 response with a Content-Length."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    requests: tuple[bytes, ...]          # whole HTTP/1.1 requests, sent in turn
    tls: ssl.SSLContext | None = None


@dataclass
class Result:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)   # seconds, one per answered request
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0   # user + system, of this process
    sys_seconds: float = 0.0


def build_request(method: str, path: str, host: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bool]:
    """(status, whether the server closes the connection after this answer)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise ProtocolError(head[:40])
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        raise ProtocolError("no content-length")
    end = lowered.find(b"\r\n", at + 2)
    await reader.readexactly(int(lowered[at + 17:end]))
    return int(head[9:12]), b"\r\nconnection: close" in lowered


async def _connection(target: Target, offset: int, next_due, result: Result) -> None:
    """One kept-alive connection: take the next due time (0: now), wait for it, send, read; reconnect after an error."""
    reader = writer = None
    turn = offset
    try:
        while (due := next_due()) is not None:
            if due and due > time.perf_counter():
                await asyncio.sleep(due - time.perf_counter())
            began = due or time.perf_counter()   # open loop: from when it was due; closed loop: from now
            request = target.requests[turn % len(target.requests)]
            turn += 1
            result.sent += 1
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(target.host, target.port, ssl=target.tls)
                status, closing = await _exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProtocolError, ValueError) as exc:
                result.errors[type(exc).__name__] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            result.latencies.append(time.perf_counter() - began)
            result.statuses[status] += 1
            if closing:  # answered, but the server will not take another request on this connection
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def run(target: Target, *, connections: int, duration: float, rate: float | None = None) -> Result:
    """Load `target` for `duration` seconds from `connections` connections; closed loop, or `rate` requests/s."""
    result = Result()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    deadline = started + duration
    issued = 0

    def closed_loop() -> float | None:
        return 0.0 if time.perf_counter() < deadline else None

    def open_loop() -> float | None:
        nonlocal issued
        due = started + issued / rate
        if due >= deadline:
            return None
        issued += 1
        return due

    next_due = closed_loop if rate is None else open_loop
    await asyncio.gather(*(_connection(target, i, next_due, result) for i in range(connections)))
    result.wall_seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    result.sys_seconds = cpu_after.ru_stime - cpu_before.ru_stime
    result.cpu_seconds = (cpu_after.ru_utime - cpu_before.ru_utime) + result.sys_seconds
    return result
