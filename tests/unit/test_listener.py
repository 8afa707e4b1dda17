"""The listening sockets (gateway/listener.py and the sandbox bank's `_listen`): asyncio sets TCP_NODELAY on the
connections they accept, because they were made naming IPPROTO_TCP; a socket from `socket.create_server` is the
control that shows why that matters (asyncio leaves its connections with Nagle on)."""
from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.listener import tcp_listener
from gateway.sandbox.__main__ import _listen


def _nodelay_of_accepted_connection(sock: socket.socket) -> int:
    """Serve `sock` with asyncio, connect once, and give TCP_NODELAY as the server side's connection has it."""
    async def scenario() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handler, sock=sock)
        try:
            host, port = sock.getsockname()[:2]
            reader, writer = await asyncio.open_connection(host, port)
            try:
                return await asyncio.wait_for(accepted, 5)
            finally:
                writer.close()
                await writer.wait_closed()
        finally:
            server.close()
            await server.wait_closed()

    try:
        return asyncio.run(scenario())
    finally:
        sock.close()


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_connections_accepted_on_tcp_listener_get_tcp_nodelay():
    assert _nodelay_of_accepted_connection(tcp_listener("127.0.0.1", 0)) != 0


def test_control_connections_accepted_on_a_create_server_socket_do_not_get_tcp_nodelay():
    assert _nodelay_of_accepted_connection(socket.create_server(("127.0.0.1", 0))) == 0


def test_connections_accepted_on_the_sandbox_banks_listener_get_tcp_nodelay():
    assert _nodelay_of_accepted_connection(_listen("127.0.0.1", 0)) != 0


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_ipv6_tcp_listener_is_ipv6_and_its_connections_get_tcp_nodelay():
    sock = tcp_listener("::1", 0)
    assert sock.family == socket.AF_INET6
    assert _nodelay_of_accepted_connection(sock) != 0


def test_tcp_listener_is_inheritable_for_the_worker_processes():
    with tcp_listener("127.0.0.1", 0) as sock:
        assert sock.get_inheritable()


def test_tcp_listener_is_bound_to_a_real_port_but_not_yet_listening():
    with tcp_listener("127.0.0.1", 0) as sock:
        assert sock.getsockname()[0] == "127.0.0.1"
        assert sock.getsockname()[1] != 0
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
