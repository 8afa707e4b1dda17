"""A whole stack for the load tests and the benchmark: Redis, the sandbox bank, a dev PKI, gateways on demand.

Everything lives under one work directory and stops when the `with` block ends (children also die with this
process). Gateways and the bare proxy bind one port, so a token issued by one gateway verifies at the next.
"""
from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.audit import query  # noqa: E402
from gateway.children import die_with_parent, stop  # noqa: E402
from gateway.cli.demo import register_demo_tpps, start_bank  # noqa: E402
from gateway.pki import init_dev_pki  # noqa: E402
from gateway.store.audit import AuditReader  # noqa: E402
from gateway.store.embedded import EmbeddedRedis  # noqa: E402
from gateway.store.redis import sync_client  # noqa: E402

TOTP_WINDOW = 10_000  # steps either side of now the bank accepts a one-time code for (TEST_TOTP_WINDOW)

READY_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


class Server:
    """A child process with its output in a file, ready once it accepts connections on `port` (the gateway's
    workers listen only once they have started)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.log = log
        self._file = log.open("w")
        self.process = subprocess.Popen(args, env=env, stdout=self._file, stderr=subprocess.STDOUT, cwd=ROOT,
                                        preexec_fn=die_with_parent)
        deadline = time.monotonic() + READY_SECONDS
        while not _accepts(port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{args[1:4]} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop(self.process)
        self._file.close()


class Stack:
    """Redis (embedded, private), the sandbox bank, a dev PKI with the demo TPPs registered."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.pki = work / "certs"
        self.port = free_port()
        self.base = f"https://127.0.0.1:{self.port}"
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Stack:
        try:
            init_dev_pki(self.pki)
            self.redis = self._stack.enter_context(EmbeddedRedis(self.work / "redis"))
            self.redis_url = self.redis.url
            # The fixture logs alice and bob in many times a minute, each with a one-time code of its own (as the
            # test suite's banks do: tests/support/authenticator.py).
            bank, line = start_bank("127.0.0.1", 0, 0, self.work / "ledger.jsonl", totp_window=TOTP_WINDOW)
            if bank.stdout is not None:
                self._stack.callback(bank.stdout.close)  # after stop(), below: the callbacks run last first
            self._stack.callback(stop, bank)
            self.bank_pid = bank.pid
            words = line.split()  # "sandbox bank: accounts URL payments URL"
            self.accounts_url, self.payments_url = words[3], words[5]
            register_demo_tpps(self.redis_url, self.pki)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @property
    def redis_pid(self) -> int:
        return self.redis.pid

    def env(self, workers: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OBGW_")}
        env.update({
            "REDIS_URL": self.redis_url, "OBGW_VAR_DIR": str(self.work / "var"), "OBGW_PORT": str(self.port),
            "OBGW_ADMIN_PORT": str(free_port()), "OBGW_WORKERS": str(workers),
            "OBGW_TLS_CERT": str(self.pki / "server.pem"), "OBGW_TLS_KEY": str(self.pki / "server.key"),
            "OBGW_CLIENT_CA": str(self.pki / "ca.pem"), "OBGW_POLICY_DIR": str(ROOT / "policies"),
            "OBGW_DIRECTORY_JWKS": str(self.pki / "directory-jwks.json"),
            "OBGW_SERVICE_ACCOUNTS_URL": self.accounts_url, "OBGW_SERVICE_PAYMENTS_URL": self.payments_url,
        })
        return env

    def gateway(self, workers: int) -> Server:
        """`obgw serve` on the stack's port; stop() it before starting the next."""
        return Server([sys.executable, "-m", "gateway", "serve"], self.env(workers),
                      self.work / f"gateway-{workers}.log", self.port)

    def gateway_behind_edge(self, port: int) -> Server:
        """`obgw serve` with 1 worker on plain HTTP on loopback `port` (OBGW_PLAIN_HTTP), for an edge on the stack's
        port: the issuer is the edge's address, and loopback's RFC 9440 `Client-Cert` is honoured."""
        env = {**self.env(1), "OBGW_PORT": str(port), "OBGW_ISSUER": self.base, "OBGW_TRUSTED_PROXIES": "127.0.0.1/32",
               "OBGW_PLAIN_HTTP": "1"}
        return Server([sys.executable, "-m", "gateway", "serve"], env, self.work / "gateway-plain.log", port)

    def process(self, args: list[str], log: str, **env: str) -> Server:
        """Another server on the stack's port (the benchmark's bare proxy), with the gateway's settings."""
        return Server([sys.executable, *args], {**self.env(1), **env}, self.work / log, self.port)

    def tls(self, tpp: str) -> ssl.SSLContext:
        """A client TLS context presenting `tpp`'s certificate and trusting the dev CA."""
        context = ssl.create_default_context(cafile=str(self.pki / "ca.pem"))
        context.load_cert_chain(str(self.pki / f"{tpp}.pem"), str(self.pki / f"{tpp}.key"))
        return context

    def audit_records(self, since: datetime, until: datetime) -> list[dict]:
        """The audit records that arrived between the two moments."""
        client = sync_client(self.redis_url)
        try:
            return list(query.search(AuditReader(client), since=since, until=until))
        finally:
            client.close()
