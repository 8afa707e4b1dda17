"""A test back-end for routing and failure tests: echoes what reached it, is slow, fails, on request.

Run: `python tests/support/backend.py` — prints `backend ready PORT` once listening on 127.0.0.1.

    /slow...            answers after 3 s (`?ms=N`: after N ms)
    /fail...            500 with a stack-trace-like body
    /status/N           status N
    /flaky...           echoes, or 500 while `POST /control/flaky/fail` is in force (`.../heal` ends it)
    GET /control/seen   {path: requests that reached it}, counted on arrival, before the body is read
anything else echoes the request as JSON.
"""
import asyncio
import collections
import json
import socket
from urllib.parse import parse_qs

import uvicorn

seen: collections.Counter = collections.Counter()
flaky_failing = False


async def control(scope, send):
    global flaky_failing
    path = scope["path"]
    if path == "/control/flaky/fail":
        flaky_failing = True
    elif path == "/control/flaky/heal":
        flaky_failing = False
    payload = json.dumps(dict(seen) if path == "/control/seen" else {"flaky_failing": flaky_failing}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"].startswith("/control/"):
        return await control(scope, send)
    seen[scope["path"]] += 1
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    status, payload, extra = 200, None, []
    if path.startswith("/slow"):
        await asyncio.sleep(int(parse_qs(scope["query_string"].decode()).get("ms", ["3000"])[0]) / 1000)
    elif path.startswith("/fail") or (path.startswith("/flaky") and flaky_failing):
        status, payload = 500, b"Traceback (most recent call last): secret internals"
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
    if payload is None:
        payload = json.dumps({
            "method": scope["method"], "path": path, "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(), "body": body.decode(errors="replace"),
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        }).encode()
        extra = [(b"content-type", b"application/json")]
    headers = [*extra, (b"set-cookie", b"bank=internal"), (b"x-bank-internal", b"secret"),
               (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"backend ready {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
