"""A bank back-end that answers garbage, at the byte level (no HTTP library to tidy its answers up).

Run: `python tests/support/odd_bank.py` — prints `odd bank ready PORT` once listening on 127.0.0.1.

The answer to `GET /accounts?fault=NAME&...` is chosen by NAME:

    ok             200, a valid OBReadAccount6 document (the sandbox's own acc-alice-current), kept alive
    not-json       200 application/json whose body is not JSON
    wrong-shape    200 JSON that is no OBReadAccount6 (`Data.Account` a string)
    truncated      Content-Length 4096, a few bytes of body, then the connection is closed
    overlong       Content-Length shorter than the body; the rest of the bytes are a second, smuggled response
                   (an account that is not the one asked for), and the connection is kept alive
    bad-length     a Content-Length that is not a number
    bad-chunks     Transfer-Encoding: chunked with a chunk size that is not hexadecimal
    bad-gzip       Content-Encoding: gzip on a body that is not gzip
    not-http       bytes that are not an HTTP response at all, then close
    hang-up        the request is read, then the connection is closed without a byte
    stall-body     the headers and half the body, then nothing until the caller gives up
    html-400       400 text/html: an error page of the bank's own (no OBErrorResponse1)

Every garbage body contains MARKER, so a test can tell whether any of it reached the TPP.
`GET /control/seen` answers {NAME: requests received} (counted when the request has been read).
"""
from __future__ import annotations

import asyncio
import collections
import json
import socket
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# Run as a script, this directory comes first on sys.path, and its gateway.py is not the product's package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

MARKER = "ODD-BANK-GARBAGE"
seen: collections.Counter = collections.Counter()


def _good_document() -> bytes:
    from gateway.sandbox.data import build_bank
    account = build_bank(1).ledger.account("acc-alice-current").to_ob()
    return json.dumps({"Data": {"Account": [account]}, "Links": {"Self": "http://odd-bank/accounts"},
                       "Meta": {"TotalPages": 1}}).encode()


GOOD = _good_document()
SMUGGLED = json.dumps({"Data": {"Account": [{"AccountId": "acc-alice-current", "Nickname": MARKER,
                                             "Currency": "GBP", "AccountType": "Personal",
                                             "AccountSubType": "CurrentAccount"}]},
                       "Links": {"Self": MARKER}, "Meta": {}}).encode()


def _response(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode() + body


def _json(body: bytes, length: int | None = None, extra: list[tuple[str, str]] = ()) -> bytes:
    return _response("200 OK", [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body) if length is None else length)), *extra], body)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, list[str]]] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    length = int(headers.get("content-length", "0") or 0)
    if length:
        await reader.readexactly(length)
    parts = urlsplit(target)
    return parts.path, parse_qs(parts.query)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request = await _read_request(reader)
            if request is None:
                return
            path, query = request
            if path == "/control/seen":
                writer.write(_json(json.dumps(dict(seen)).encode()))
                await writer.drain()
                continue
            fault = query.get("fault", ["ok"])[0]
            seen[fault] += 1
            garbage = f'{{"Data": {{"Account": [{{"AccountId": "{MARKER}" <html>'.encode()
            if fault == "ok":
                writer.write(_json(GOOD))
            elif fault == "not-json":
                writer.write(_json(garbage))
            elif fault == "wrong-shape":
                writer.write(_json(json.dumps({"Data": {"Account": MARKER}, "Links": {}, "Meta": {}}).encode()))
            elif fault == "overlong":
                smuggled = _json(SMUGGLED)
                writer.write(_json(GOOD + smuggled, length=len(GOOD)))
            elif fault == "bad-length":
                writer.write(_response("200 OK", [("Content-Type", "application/json"),
                                                  ("Content-Length", "twelve")], garbage))
            elif fault == "bad-chunks":
                writer.write(_response("200 OK", [("Content-Type", "application/json"),
                                                  ("Transfer-Encoding", "chunked")], b"zz\r\n" + garbage + b"\r\n"))
            elif fault == "bad-gzip":
                writer.write(_json(garbage, extra=[("Content-Encoding", "gzip")]))
            elif fault == "html-400":
                page = f"<html><body>{MARKER}: Traceback (most recent call last) at core-banking-7</body></html>"
                writer.write(_response("400 Bad Request", [("Content-Type", "text/html"),
                                                           ("Content-Length", str(len(page)))], page.encode()))
            elif fault == "truncated":
                writer.write(_json(garbage, length=4096))
                await writer.drain()
                return
            elif fault == "not-http":
                writer.write(f"{MARKER} this is not HTTP\r\n\r\n".encode())
                await writer.drain()
                return
            elif fault == "hang-up":
                return
            elif fault == "stall-body":
                writer.write(_json(GOOD, length=len(GOOD) * 2))
                await writer.drain()
                await asyncio.wait_for(reader.read(), timeout=60)  # until the caller gives up (bounded)
                return
            else:
                writer.write(_response("404 Not Found", [("Content-Length", "0")], b""))
            await writer.drain()
    except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def main() -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = await asyncio.start_server(handle, sock=sock)
    print(f"odd bank ready {sock.getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
