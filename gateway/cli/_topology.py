"""The parts of the production topology, started on loopback from Debian's engines: a Redis Cluster of three masters
and three replicas (`redis-server` in cluster mode, built with `redis-cli --cluster create`) and an HAProxy edge that
terminates mutual TLS and forwards the verified client certificate to the gateway nodes as RFC 9440 `Client-Cert`.
What `obgw demo-cluster` runs (and the cluster test tier, through it).

HAProxy, not nginx: it gives the certificate's DER as base64 (`ssl_c_der,base64`), which is exactly RFC 9440's byte
sequence; nginx gives the PEM only. Secrets never sit in a command line or a world-readable file: the Redis password
reaches each server on its standard input, the edge's key file is owner-only.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.children import listening, private_child, stop
from gateway.cli import CliError
from gateway.state import make_private

NODE_TIMEOUT_MS = 2000   # a master's failover to its replica completes within seconds (CONTRACT §13: within 20 s)
READY_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)),
                                       None)
    if found is None:
        raise CliError(f"{name} not found: install it (Debian/Ubuntu: apt-get install -y --no-install-recommends "
                       f"{package})")
    return found


@dataclass
class LocalRedisCluster:
    """Six `redis-server`s on loopback (append-only, password), made one cluster: 3 masters, 3 replicas."""
    directory: Path
    nodes: int = 6
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ports: list[int] = field(default_factory=list)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The gateway's REDIS_URL for this cluster (every node named: a client finds the slots from any)."""
        return f"redis+cluster://:{self.password}@" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> str:
        server = _binary("redis-server", "redis-server")
        make_private(self.directory)
        self.ports = [free_port() for _ in range(self.nodes)]
        for port in self.ports:
            node_dir = self.directory / str(port)
            make_private(node_dir)
            config = "\n".join([
                "bind 127.0.0.1", f"port {port}", f"dir {node_dir.resolve()}", "protected-mode yes",
                # the bus port named, not port + 10000 (over 65535 for a port drawn from the ephemeral range)
                "cluster-enabled yes", f"cluster-port {free_port()}", "cluster-config-file nodes.conf",
                f"cluster-node-timeout {NODE_TIMEOUT_MS}",
                "appendonly yes", "appendfsync everysec", 'save ""', "daemonize no", "loglevel warning",
                f"logfile {(node_dir / 'redis.log').resolve()}",
                f"requirepass {self.password}", f"masterauth {self.password}",
            ])
            process = subprocess.Popen([server, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, preexec_fn=private_child, start_new_session=True)
            assert process.stdin is not None  # stdin=PIPE
            process.stdin.write(config.encode())
            process.stdin.close()
            self._processes.append(process)
        for port in self.ports:
            self._wait(lambda p=port: self._cli(p, "PING").strip() == "PONG", f"redis-server on port {port}")
        created = subprocess.run(
            [_binary("redis-cli", "redis-tools"), "--no-auth-warning", "-a", self.password, "--cluster", "create",
             *(f"127.0.0.1:{port}" for port in self.ports), "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=READY_SECONDS, check=False)
        if created.returncode != 0:
            self.stop()
            raise CliError(f"redis-cli --cluster create failed: {created.stdout[-400:]}{created.stderr[-400:]}")
        for port in self.ports:
            self._wait(lambda p=port: "cluster_state:ok" in self._cli(p, "CLUSTER", "INFO"), "the cluster's slots")
        return self.url

    def _cli(self, port: int, *command: str) -> str:
        done = subprocess.run([_binary("redis-cli", "redis-tools"), "--no-auth-warning", "-a", self.password, "-p",
                               str(port), *command], capture_output=True, text=True, timeout=5, check=False)
        return done.stdout

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise CliError(f"{what} did not come up within {READY_SECONDS} s (logs under {self.directory})")

    def stop(self) -> None:
        for process in self._processes:
            stop(process)
        self._processes.clear()


@dataclass
class HAProxyEdge:
    """HAProxy on `port`: mutual TLS with the TPPs (a certificate is asked for, not required: customers' browsers
    have none), any client-sent Client-Cert removed, the verified one forwarded as RFC 9440 `Client-Cert`, calls
    spread over the nodes (TLS to them, their CA verified), a node whose admin `/livez` fails taken out within
    seconds."""
    directory: Path
    port: int
    server_cert: Path
    server_key: Path
    client_ca: Path
    nodes: list[tuple[int, int]]   # (TLS port, admin port) of each gateway node
    _process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        crt = self.directory / "edge.pem"
        servers = "\n".join(
            f"  server node{number} 127.0.0.1:{port} ssl verify required ca-file {self.client_ca.resolve()} "
            f"check port {admin} no-check-ssl inter 1s fall 2 rise 2"
            for number, (port, admin) in enumerate(self.nodes, 1))
        return f"""global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  option forwardfor
  # a node that refuses the connection (dead): the call goes to the other at once, before the health check notices
  retries 2
  option redispatch
frontend tpps
  bind 127.0.0.1:{self.port} ssl crt {crt.resolve()} ca-file {self.client_ca.resolve()} verify optional alpn http/1.1
  http-request del-header Client-Cert
  http-request del-header Client-Cert-Chain
  http-request set-header Client-Cert :%[ssl_c_der,base64]: if {{ ssl_c_used }}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /livez
{servers}
"""

    def start(self) -> None:
        make_private(self.directory)
        key = os.open(self.directory / "edge.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(key, "wb") as pem:
            pem.write(self.server_cert.read_bytes() + b"\n" + self.server_key.read_bytes())
        (self.directory / "haproxy.cfg").write_text(self.config())
        check = subprocess.run([_binary("haproxy", "haproxy"), "-c", "-f", str(self.directory / "haproxy.cfg")],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise CliError(f"the edge's configuration is refused: {check.stdout[-400:]}{check.stderr[-400:]}")
        self._process = subprocess.Popen(
            [_binary("haproxy", "haproxy"), "-db", "-f", str(self.directory / "haproxy.cfg")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=private_child)
        if listening(self._process, self.port, READY_SECONDS, pause=0.1):
            return
        self.stop()
        raise CliError(f"the edge did not listen on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process)
            self._process = None
