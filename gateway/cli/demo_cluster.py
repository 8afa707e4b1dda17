"""`obgw demo-cluster`: the production topology on one machine, until Ctrl-C (CONTRACT §13) - a Redis Cluster of
3 masters and 3 replicas, two gateway nodes (2 workers each, their own state directories and admin ports 8090 and
8091), an HAProxy edge on https://127.0.0.1:8443 that terminates mutual TLS and forwards the verified certificate
as RFC 9440 `Client-Cert`, and the sandbox bank as in `obgw demo`.

The nodes trust the edge's address for `Client-Cert` and `X-Forwarded-For` and name the edge as their issuer, so
tokens, links and redirects are the edge's. The CLI finds the cluster as it finds the embedded Redis: the URL in
`var/redis/redis.url`, valid while this command holds `var/redis/.lock`.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gateway.children import die_with_parent, private_child, stop
from gateway.cli import CliError
from gateway.cli._settings import settings_from
from gateway.cli._topology import HAProxyEdge, LocalRedisCluster, free_port
from gateway.cli.demo import register_demo_tpps, start_bank
from gateway.pki import init_dev_pki
from gateway.settings import SETTINGS, add_arguments
from gateway.state import make_private

ADMIN_PORTS = (8090, 8091)
NODE_READY_SECONDS = 60


def register(subparsers) -> None:
    p = subparsers.add_parser("demo-cluster", help="the production topology on loopback: Redis Cluster, two gateway "
                              "nodes, an mTLS edge, the sandbox bank", description=__doc__)
    add_arguments(p, tuple(s.name for s in SETTINGS))
    p.add_argument("--bank-host", default="127.0.0.1", help="sandbox bank address (default 127.0.0.1)")
    p.add_argument("--accounts-port", type=int, default=8081, help="sandbox accounts service port (default 8081)")
    p.add_argument("--payments-port", type=int, default=8082, help="sandbox payments service port (default 8082)")
    p.add_argument("--admin-ports", default=",".join(map(str, ADMIN_PORTS)),
                   help="the two nodes' admin ports (default 8090,8091)")
    p.set_defaults(func=run)


def _hold_url(redis_dir: Path, url: str):
    """Publish the cluster's URL for the CLI (store.embedded.running_url): the lock is held while this runs."""
    make_private(redis_dir)
    lock = open(redis_dir / ".lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise CliError(f"{redis_dir} is in use by another demo") from None
    fd = os.open(redis_dir / "redis.url", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(url)
    return lock


def _node(settings, number: int, redis_url: str, admin_port: int, issuer: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "OBGW_HOST": "127.0.0.1", "OBGW_PORT": str(port),
           "OBGW_ADMIN_PORT": str(admin_port), "OBGW_WORKERS": "2",
           "OBGW_VAR_DIR": str(settings.var_dir / f"node{number}"),
           "OBGW_ISSUER": issuer, "OBGW_TRUSTED_PROXIES": "127.0.0.1/32",
           "OBGW_TLS_CERT": str(settings.tls_cert), "OBGW_TLS_KEY": str(settings.tls_key),
           "OBGW_CLIENT_CA": str(settings.client_ca), "OBGW_POLICY_DIR": str(settings.policy_dir),
           "OBGW_AUDIT_ARCHIVE_DIR": str(settings.audit_archive_path),  # one archive for both nodes (and the CLI)
           "OBGW_AUDIT_SHARDS": "3",  # the workers' audit chains spread over the three masters
           **{f"OBGW_SERVICE_{name.upper()}_URL": url for name, url in settings.service_urls.items()}}
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, preexec_fn=private_child)
    return process, port


def _wait_ready(admin_port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + NODE_READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CliError(f"the gateway node with admin port {admin_port} exited at start")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/livez", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:  # not listening yet (URLError and HTTPError are OSErrors)
            pass
        time.sleep(0.2)
    raise CliError(f"the gateway node with admin port {admin_port} did not come up in {NODE_READY_SECONDS} s")


def _wait_through_edge(issuer: str, ca: Path) -> None:
    """Until a call through the edge reaches a node (its health checks have marked one up)."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + NODE_READY_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(issuer + "/.well-known/openid-configuration", timeout=2,
                                        context=context) as answer:
                if answer.status == 200:
                    return
        except OSError:  # 503 from the edge while no node is up yet, or not listening
            pass
        time.sleep(0.2)
    raise CliError(f"no gateway node answered through the edge within {NODE_READY_SECONDS} s")


def run(args: argparse.Namespace) -> int:
    die_with_parent()
    settings = settings_from(args)
    if init_dev_pki(settings.client_ca.parent):
        print(f"obgw: dev PKI written to {settings.client_ca.parent}")
    make_private(settings.var_dir)
    admin_ports = [int(p) for p in args.admin_ports.split(",")]
    issuer = f"https://127.0.0.1:{settings.port}"
    running: list[subprocess.Popen] = []
    cluster = LocalRedisCluster(settings.var_dir / "cluster")
    edge: HAProxyEdge | None = None
    lock = None

    def on_signal(signum, frame):  # SIGTERM as Ctrl-C: stop everything in order
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        url = cluster.start()
        lock = _hold_url(settings.var_dir / "redis", url)
        (settings.var_dir / "sandbox").mkdir(exist_ok=True)
        bank, bank_line = start_bank(args.bank_host, args.accounts_port, args.payments_port,
                                     settings.var_dir / "sandbox" / "ledger.jsonl")
        running.append(bank)
        settings = settings.replace(service_urls={
            "accounts": f"http://{args.bank_host}:{args.accounts_port}",
            "payments": f"http://{args.bank_host}:{args.payments_port}", **settings.service_urls})
        nodes = []
        for number, admin_port in enumerate(admin_ports, 1):
            process, port = _node(settings, number, url, admin_port, issuer)
            running.append(process)
            nodes.append((port, admin_port))
            _wait_ready(admin_port, process)
        register_demo_tpps(url, settings.client_ca.parent)
        edge = HAProxyEdge(settings.var_dir / "edge", settings.port, settings.tls_cert, settings.tls_key,
                           settings.client_ca, nodes)
        edge.start()
        _wait_through_edge(issuer, settings.client_ca)
        print(f"""
obgw demo-cluster is running (Ctrl-C stops everything)
  edge            {issuer}   (HAProxy: mutual TLS; forwards the certificate as RFC 9440 Client-Cert)
  gateway nodes   {", ".join(f"127.0.0.1:{p} (admin http://127.0.0.1:{a}/livez /readyz /metrics)" for p, a in nodes)}
  redis cluster   3 masters + 3 replicas on ports {", ".join(map(str, cluster.ports))}
  {bank_line}
  The whole TPP flow works through the edge as with `make demo` (README.md, "Try it").
""", flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        if edge is not None:
            edge.stop()
        for process in reversed(running):
            stop(process)
        cluster.stop()
        if lock is not None:
            (settings.var_dir / "redis" / "redis.url").unlink(missing_ok=True)
            lock.close()
