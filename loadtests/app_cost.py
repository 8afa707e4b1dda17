"""The gateway's own cost per proxied call, without the server stack: the ASGI app driven in-process.

    .venv/bin/python loadtests/app_cost.py [--calls N] [--callgrind]

The benchmark's numbers move with whatever else the machine runs; this one does not. It starts the benchmark's stack
(Redis, the sandbox bank, a dev PKI, one real consent through the pages: `stack.py`, `bench.prepare`), builds the
gateway's app as a worker does (`create_app_from_env`, its lifespan run), and sends it the benchmark's three calls
straight as ASGI messages (the TLS extension carrying the TPP's certificate, as server.py puts it), eight at a time
on uvloop. Every middleware, stage, Redis round trip, bank exchange and audit append runs; uvicorn, TLS and the
sockets to the TPP do not (variant b of the benchmark measures those).

It prints the process's CPU per call; with `--callgrind` it runs itself under valgrind's callgrind, collecting only
while the measured calls run, and prints machine instructions per call: the same count for the same code whatever
the machine is doing (repeat runs agree within 0.5 %), so two versions of the code compare in one line each.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "loadtests")]

import bench  # noqa: E402
import uvloop  # noqa: E402
from stack import Stack  # noqa: E402
from support.tpp import CUSTOMER_PRESENT  # noqa: E402

WARMUP = 200
CONCURRENCY = 8
_COLLECTING = "APP_COST_COLLECTING"  # set when running under callgrind


async def _lifespan(app):
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get,
                                   outbox.put))
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task
    return stop


def _callgrind(switch: str) -> None:
    if os.environ.get(_COLLECTING):
        subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], capture_output=True, check=False)


async def _measure(stack: Stack, token: str, accounts: list[str], calls: int) -> tuple[float, dict[int, int]]:
    os.environ.update(stack.env(1))
    from gateway.app import create_app_from_env

    app = create_app_from_env()
    stop = await _lifespan(app)
    certificate = (stack.pki / "tpp-demo.pem").read_text()
    paths = [(f"{bench.AISP}/accounts", f"account_ids={','.join(accounts)}".encode()),
             (f"{bench.AISP}/accounts/{accounts[0]}", b""), (f"{bench.AISP}/accounts/{accounts[0]}/balances", b"")]
    headers = [(b"host", f"127.0.0.1:{stack.port}".encode()), (b"authorization", f"Bearer {token}".encode()),
               *((k.lower().encode(), v.encode()) for k, v in CUSTOMER_PRESENT.items())]
    statuses: dict[int, int] = {}

    async def call(number: int) -> None:
        path, query = paths[number % len(paths)]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "https", "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
                 "headers": list(headers), "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", stack.port),
                 "state": {}, "extensions": {"tls": {"client_cert_chain": [certificate]}}}
        received = False

        async def receive() -> dict:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client stays: nothing more arrives
            return {}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope, receive, send)

    async def run(count: int) -> None:
        async def caller(first: int) -> None:
            for number in range(first, count, CONCURRENCY):
                await call(number)
        await asyncio.gather(*(caller(first) for first in range(CONCURRENCY)))

    try:
        await run(WARMUP)
        statuses.clear()
        _callgrind("on")
        before = time.process_time()
        await run(calls)
        spent = time.process_time() - before
        _callgrind("off")
    finally:
        await stop()
    return spent / calls * 1e6, statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, help="measured calls (default 3000; 300 with --callgrind)")
    parser.add_argument("--callgrind", action="store_true", help="count instructions under valgrind's callgrind")
    args = parser.parse_args(argv)
    if args.callgrind:
        return _under_callgrind(args.calls or 300)
    with tempfile.TemporaryDirectory() as work, Stack(Path(work)) as stack:
        token, accounts, _ = bench.prepare(stack)
        us, statuses = uvloop.run(_measure(stack, token, accounts, args.calls or 3000))
    print(f"{args.calls or 3000} calls: {us:.1f} µs of CPU per call, answered {statuses}")
    return 0 if set(statuses) == {200} else 1


def _under_callgrind(calls: int) -> int:
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "callgrind.out"
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", sys.executable,
             __file__, "--calls", str(calls)],
            env={**os.environ, _COLLECTING: "1"}, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.exists():
            print(done.stdout + done.stderr[-2000:], file=sys.stderr)
            return 1
        totals = re.search(r"^totals:\s*(\d+)", out.read_text(), re.MULTILINE)
        if totals is None:
            print(f"no instruction count in {out}", file=sys.stderr)
            return 1
        print(done.stdout.strip().splitlines()[-1])
        print(f"{int(totals.group(1)) / calls:,.0f} instructions per call (callgrind, {calls} calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
