"""A slow bank: an HTTP proxy in front of a real back-end that holds each request a while before passing it on.

Run: `python tests/support/slow_bank.py TARGET_URL` — prints `slow bank ready PORT` once listening on 127.0.0.1.

    POST /control/delay?ms=N   hold every later request N ms before passing it on (0 at start)
    GET  /control/held         [{"path", "client_port"}] of the requests being held now (client_port: the caller's
                               end of the connection, to tell which process sent it)
    GET  /control/done         [{"path", "status"}] of the requests passed on and answered by the target

A request is passed on even if its caller has gone meanwhile, as a real bank would finish a payment whose caller
crashed; only the answer has nobody to go to.
"""
from __future__ import annotations

import asyncio
import socket
import sys

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


def build(target: str) -> web.Application:
    state = {"delay": 0.0, "held": [], "done": [], "session": None}

    async def forward(method: str, path_qs: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        async with state["session"].request(method, target + path_qs, headers=headers, data=body or None,
                                            allow_redirects=False) as answer:
            return answer.status, [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP], \
                await answer.read()

    async def proxy(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/control/"):
            if request.path == "/control/delay":
                state["delay"] = int(request.query.get("ms", "0")) / 1000
            key = request.path.rsplit("/", 1)[1]
            if key in ("held", "done"):
                return web.json_response(state[key])
            return web.json_response({"delay_ms": state["delay"] * 1000})
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        entry = {"path": request.path, "client_port": peer[1] if peer else None}
        state["held"].append(entry)
        try:
            await asyncio.sleep(state["delay"])
        finally:
            state["held"].remove(entry)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        # Shielded: the target gets the whole request and answers it whatever happened to our caller.
        task = asyncio.ensure_future(forward(request.method, request.path_qs, headers, body))
        status, answer_headers, answer_body = await asyncio.shield(task)
        state["done"].append({"path": request.path, "status": status})
        return web.Response(status=status, headers=answer_headers, body=answer_body)

    async def on_startup(app) -> None:
        state["session"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def on_cleanup(app) -> None:
        await state["session"].close()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


if __name__ == "__main__":
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"slow bank ready {sock.getsockname()[1]}", flush=True)
    web.run_app(build(sys.argv[1].rstrip("/")), sock=sock, print=None, access_log=None, handle_signals=True)
