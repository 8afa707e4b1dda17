"""`python -m gateway.sandbox`: run the accounts and payments services in one process.

Sockets are bound here rather than by uvicorn so port 0 works and the real ports can be printed.
Both servers share one event loop and one pair of signal handlers: uvicorn's own handlers chain
and re-raise the signal after shutdown, which would end the process with a signal status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from gateway.sandbox.app import create_accounts_app, create_payments_app
from gateway.sandbox.data import build_bank


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield




def _listen(host: str, port: int) -> socket.socket:
    # Created naming IPPROTO_TCP so that asyncio sets TCP_NODELAY on its connections (it checks `sock.proto`):
    # socket.create_server's sockets say 0, and each answer's body then waited ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve(apps: list[tuple[Starlette, socket.socket]]) -> None:
    servers = [
        _Server(uvicorn.Config(app, http="httptools", lifespan="off", log_level="warning")) for app, _ in apps
    ]

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, (_, sock) in zip(servers, apps)]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.01)
    else:
        print(f"sandbox bank: accounts {_url(apps[0][1])} payments {_url(apps[1][1])}", flush=True)
    # If either server stops, stop the other too.
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop()
    await asyncio.gather(*tasks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.sandbox", description="Run the sandbox bank's accounts and payments services."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--accounts-port", type=int, default=8081)
    parser.add_argument("--payments-port", type=int, default=8082)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--state-file", help="JSON-lines file that keeps payments across restarts")
    parser.add_argument(
        "--totp-window", type=int, default=1, metavar="STEPS",
        help="30 s steps either side of now a one-time code may be for (default: %(default)s, RFC 6238 §5.2). Each "
        "code is still accepted once only; a test suite logging one customer in many times a minute widens it so "
        "that every login can have a code of its own")
    args = parser.parse_args(argv)
    if args.totp_window < 0:
        parser.error("--totp-window must not be negative")
    bank = build_bank(args.seed, state_file=args.state_file, totp_window=args.totp_window)
    apps = [
        (create_accounts_app(bank), _listen(args.host, args.accounts_port)),
        (create_payments_app(bank), _listen(args.host, args.payments_port)),
    ]
    asyncio.run(_serve(apps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
