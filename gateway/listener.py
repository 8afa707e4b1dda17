"""The listening sockets of the gateway and the sandbox bank."""
from __future__ import annotations

import socket


def tcp_listener(host: str, port: int) -> socket.socket:
    """A bound TCP socket whose connections get TCP_NODELAY.

    asyncio sets TCP_NODELAY on a connection only when its socket says `proto == IPPROTO_TCP`, and sockets made
    without naming the protocol (uvicorn's `bind_socket`, `socket.create_server`) say 0. Without it, an answer
    written as headers then body (uvicorn, Starlette) waits for the peer's delayed ACK: measured 44 ms on every
    request after the first on a kept-alive connection, to the gateway and to the sandbox bank alike.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)  # the worker processes serve it
    return sock
