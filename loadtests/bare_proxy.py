"""The benchmark's variant (b): the gateway's server stack with no policy stages, the floor of what it can do.

Same listener as `obgw serve` (uvicorn config, mutual TLS, `ClientCertProtocol`), one worker, forwarding with a
kept-alive aiohttp session (the reference of issue 21: a bare uvicorn + aiohttp proxy); it passes the path, the query
and every request header to the accounts service and the bank's status, content type and body back.
Nothing is checked, minimised or audited.

    OBGW_* settings in the environment; BENCH_UPSTREAM=http://127.0.0.1:8081 python loadtests/bare_proxy.py
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import uvicorn
from yarl import URL

from gateway.listener import tcp_listener
from gateway.server import uvicorn_config
from gateway.settings import Settings


def create_app():
    upstream = os.environ["BENCH_UPSTREAM"]
    session = None

    async def app(scope, receive, send) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30), skip_auto_headers=("User-Agent",),
                    timeout=aiohttp.ClientTimeout(total=5, sock_connect=1))
                await send({"type": "lifespan.startup.complete"})
            await session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        target = upstream + scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k != b"host"}
        async with session.request(scope["method"], URL(target, encoded=True), headers=headers,
                                   allow_redirects=False) as response:
            body = await response.read()
        await send({"type": "http.response.start", "status": response.status, "headers": [
            (b"content-type", response.headers.get("content-type", "application/json").encode("latin-1")),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    settings = Settings.load().replace(workers=1)
    config = uvicorn_config(settings)
    config.app = "bare_proxy:create_app"
    server = uvicorn.Server(config)
    sock = tcp_listener(settings.host, settings.port)
    print(f"bare proxy: https://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
