"""A redis-server that keeps its address: `stop()` is an outage, `start()` brings the same data back on the same
port and password (an EmbeddedRedis would come back elsewhere, so clients built from its URL would never see it)."""
from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import redis
from support.ports import free_port

from gateway.children import die_with_parent, stop
from gateway.store.embedded import find_binary


class RedisServer:
    """redis-server on one address for the whole test: `stop()` is an outage, `start()` brings the same data back."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = "\n".join([
            "bind 127.0.0.1", f"port {self.port}", f"dir {self.directory}", "appendonly yes", "appendfsync always",
            'save ""', "daemonize no", "loglevel warning", f"logfile {self.directory / 'redis.log'}",
            f"requirepass {self.password}",
        ])
        self._process = subprocess.Popen([find_binary(), "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
                                         start_new_session=True)
        self._process.stdin.write(config.encode())
        self._process.stdin.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {(self.directory / 'redis.log').read_text()}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process)  # SIGTERM: Redis fsyncs its append-only file and exits; SIGKILL after 10 s
            self._process = None
