"""A TPP's event-notification endpoint on loopback (aiohttp.web): records every request and answers as told.

    async with Receiver(answers=[500, 500]) as tpp:   # 500, 500, then `default` (202) for every later request
        ... tpp.url ... tpp.requests ...
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]   # lower-cased names
    body: str


class Receiver:
    """`answers[n]` is the status of the n-th request (then `default`); `delays[n]` seconds before answering."""

    def __init__(self, answers: Sequence[int] = (), default: int = 202, delays: Sequence[float] = ()) -> None:
        self.answers, self.default, self.delays = list(answers), default, list(delays)
        self.requests: list[Received] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/event-notifications", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/event-notifications"
        return self

    async def __aexit__(self, *exc) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        n = len(self.requests)
        self.requests.append(Received({k.lower(): v for k, v in request.headers.items()}, await request.text()))
        if n < len(self.delays) and self.delays[n]:
            await asyncio.sleep(self.delays[n])
        status = self.answers[n] if n < len(self.answers) else self.default
        echo = {"x-fapi-interaction-id": request.headers.get("x-fapi-interaction-id", "")}
        if status == 400:  # RFC 8935 §2.4 error body
            return web.json_response({"err": "invalid_request", "description": "rejected by the test"},
                                     status=400, headers=echo)
        return web.Response(status=status, headers=echo)


@contextlib.contextmanager
def receiver_in_thread(**options) -> Iterator[Receiver]:
    """A Receiver on its own event loop in a thread, for tests that are not async (the e2e ones)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    receiver = Receiver(**options)
    try:
        asyncio.run_coroutine_threadsafe(receiver.__aenter__(), loop).result(timeout=10)
        yield receiver
    finally:
        asyncio.run_coroutine_threadsafe(receiver.__aexit__(None, None, None), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
