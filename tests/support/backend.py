"""A test back-end for routing and failure tests: echoes what reached it, is slow, fails, on request.

Run: `python tests/support/backend.py` — prints `backend ready PORT` once listening on 127.0.0.1.
"""
import asyncio
import json
import socket

import uvicorn


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    status, payload, extra = 200, None, []
    if path.startswith("/slow"):
        await asyncio.sleep(3)
    elif path.startswith("/fail"):
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
