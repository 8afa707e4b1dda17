"""A private `redis-server` child for a laptop run: loopback only, random password, append-only file under var/.

Only on request: `obgw demo`, or `obgw serve --embedded-redis` (a gateway that quietly started its own Redis on a
second host would split the state). Started once by the main process before the workers, stopped when it exits, and
killed by the kernel if the parent dies (PR_SET_PDEATHSIG). Everything it writes is the owner's alone: its data
directory is 0700 and it runs with umask 077 (the append-only file holds every consent and token record). A lock on
the data directory stops two gateways from sharing it; while the lock is held the running server's URL is in
`<dir>/redis.url` (mode 0600) so the CLI can reach the same data.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

import redis

from gateway.children import private_child, stop
from gateway.state import private_dir


class EmbeddedRedisError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary() -> str:
    path = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(p, os.X_OK)), None)
    if path is None:
        raise EmbeddedRedisError(
            "redis-server not found: install it (Debian/Ubuntu: apt-get install -y --no-install-recommends "
            "redis-server) or set REDIS_URL to a running Redis")
    return path


class EmbeddedRedis:
    """Use as a context manager: `with EmbeddedRedis(var_dir / "redis") as r: r.url`."""

    def __init__(self, data_dir: Path, start_timeout: float = 10.0) -> None:
        self.data_dir = Path(data_dir)
        self.start_timeout = start_timeout
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._lock_file: IO[str] | None = None

    @property
    def url_file(self) -> Path:
        return self.data_dir / "redis.url"

    def start(self) -> str:
        private_dir(self.data_dir)
        lock = os.open(self.data_dir / ".lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        lock_file = self._lock_file = os.fdopen(lock, "a")  # held for the server's lifetime
        deadline = time.monotonic() + self.start_timeout  # a previous server may still be flushing on its way out
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock_file.close()
                    self._lock_file = None
                    raise EmbeddedRedisError(
                        f"{self.data_dir} is in use by another gateway's Redis (set REDIS_URL to share it)") from None
                time.sleep(0.1)
        password = secrets.token_urlsafe(24)
        port = _free_port()
        config = "\n".join([
            "bind 127.0.0.1", f"port {port}", f"dir {self.data_dir.resolve()}", "protected-mode yes",
            "appendonly yes", "appendfsync everysec", 'save ""', "daemonize no", "loglevel warning",
            f"logfile {(self.data_dir / 'redis.log').resolve()}", f"requirepass {password}",
        ])
        self._process = subprocess.Popen(
            [find_binary(), "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=private_child, start_new_session=True,
            pass_fds=(lock_file.fileno(),),  # the lock lives as long as redis-server, not only its parent
        )
        stdin = self._process.stdin
        assert stdin is not None  # stdin=PIPE
        stdin.write(config.encode())  # the config (with the password) never touches the disk or the process list
        stdin.close()
        self.url = f"redis://:{password}@127.0.0.1:{port}/0"
        self._wait_ready()
        fd = os.open(self.url_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.url)
        return self.url

    def _wait_ready(self) -> None:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + self.start_timeout
        try:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise EmbeddedRedisError(f"redis-server exited at start; see {self.data_dir / 'redis.log'}")
                try:
                    # While the append-only file loads, Redis answers LOADING; ready means a real PONG.
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    time.sleep(0.05)
            self.stop()
            raise EmbeddedRedisError(f"redis-server did not answer within {self.start_timeout:.0f} s")
        finally:
            client.close()

    @property
    def pid(self) -> int | None:
        """The redis-server's process id while it runs (the benchmark reads its CPU time)."""
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        """Ask Redis to shut down (it fsyncs the append-only file), then reap it."""
        if self._process is not None:
            stop(self._process)
        self._process = None
        with contextlib.suppress(FileNotFoundError):
            self.url_file.unlink()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded Redis a running gateway holds for this data dir, or None if none is running."""
    url_file = Path(data_dir) / "redis.url"
    lock_path = Path(data_dir) / ".lock"
    if not url_file.exists() or not lock_path.exists():
        return None
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return url_file.read_text().strip()  # held: a gateway is running
        fcntl.flock(lock, fcntl.LOCK_UN)
    return None


def redis_url_for(redis_url: str | None, var_dir: Path) -> str:
    """The Redis a command should use: REDIS_URL, else the embedded one a running gateway holds for `var_dir`; never
    a new one (a command run on another host, or with nothing running, must not invent a Redis of its own)."""
    url = redis_url or running_url(Path(var_dir) / "redis")
    if not url:
        raise EmbeddedRedisError(
            f"no Redis: set REDIS_URL, or run this where `obgw demo` or `obgw serve --embedded-redis` is running "
            f"with the state directory {var_dir}")
    return url
