"""Redis Cluster and Sentinel processes for the cluster tier (tests/cluster/conftest.py starts them)."""
from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from pathlib import Path

import redis
from support.ports import free_port

from gateway.children import die_with_parent, stop
from gateway.store.embedded import find_binary

NODE_TIMEOUT_MS = 1000


class Node:
    """One redis-server (or Sentinel) on a free loopback port, from a config file in its own directory."""

    def __init__(self, directory: Path, lines: list[str], sentinel: bool = False, tls: Path | None = None) -> None:
        """`tls`: a dev PKI directory (`obgw certs init`): the node serves TLS only, on `port`, with its server
        certificate, and speaks TLS to the nodes it connects to (replication, other Sentinels)."""
        self.directory = directory
        self.port = free_port()
        self.lines, self.sentinel = lines, sentinel
        self.process: subprocess.Popen[bytes] | None = None
        self.tls: dict[str, object] = {}
        if tls is not None:
            self.lines = [*lines, "port 0", f"tls-port {self.port}", f"tls-cert-file {tls / 'server.pem'}",
                          f"tls-key-file {tls / 'server.key'}", f"tls-ca-cert-file {tls / 'ca.pem'}",
                          "tls-auth-clients no", "tls-replication yes",
                          # The cluster bus always verifies the connecting node's certificate, whose key usage must
                          # allow client authentication: the dev CA's TPP certificate does (server.pem does not).
                          f"tls-client-cert-file {tls / 'tpp-demo.pem'}", f"tls-client-key-file {tls / 'tpp-demo.key'}"]
            self.tls = {"ssl": True, "ssl_ca_certs": str(tls / "ca.pem")}

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / ("sentinel.conf" if self.sentinel else "redis.conf")
        if not config.exists() or not self.sentinel:  # a Sentinel rewrites its own file: keep what it learnt
            config.write_text("\n".join([
                "bind 127.0.0.1", f"port {self.port}", f"dir {self.directory}", "daemonize no", "loglevel warning",
                f"logfile {self.directory / 'redis.log'}", *self.lines]) + "\n")
        command = [find_binary(), str(config)] + (["--sentinel"] if self.sentinel else [])
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=die_with_parent, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL: a crash, no goodbye to the replicas."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def client(self, password: str | None) -> redis.Redis:
        return redis.Redis(port=self.port, password=password, socket_connect_timeout=0.5, socket_timeout=2,
                           **self.tls)

    def wait_answers(self, password: str | None, seconds: float = 10) -> None:
        client = self.client(password)
        try:
            wait_until(client.ping, seconds, f"redis on {self.port} answers")
        except AssertionError:
            raise RuntimeError(f"redis on {self.port} did not answer: {self.log()}") from None
        finally:
            client.close()

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text()[-2000:] if path.exists() else ""


def wait_until(condition, seconds: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            found = condition()
        except (redis.RedisError, OSError):
            found = None
        if found:
            return found
        time.sleep(step)
    raise AssertionError(f"not within {seconds} s: {what}")


class Cluster:
    def __init__(self, root: Path, tls: Path | None = None) -> None:
        """`tls`: every node on TLS only (Node), the cluster bus too."""
        self.password = secrets.token_urlsafe(12)
        self.nodes = [Node(root / f"node{i}", [
            "cluster-enabled yes", f"cluster-port {free_port()}", f"cluster-config-file nodes-{i}.conf",
            f"cluster-node-timeout {NODE_TIMEOUT_MS}",
            "appendonly yes", "appendfsync everysec", 'save ""', f"requirepass {self.password}",
            f"masterauth {self.password}", "cluster-replica-validity-factor 0", *(["tls-cluster yes"] if tls else []),
        ], tls=tls) for i in range(6)]
        self.cli_tls = ["--tls", "--cacert", str(tls / "ca.pem")] if tls else []
        self.url = (f"redis{'s' if tls else ''}+cluster://:{self.password}@"
                    + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
                    + (f"?ssl_ca_certs={tls / 'ca.pem'}" if tls else ""))

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_answers(self.password)
        done = subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", *self.cli_tls, "-a", self.password, "--no-auth-warning",
             "--cluster",
             "create", *(f"127.0.0.1:{n.port}" for n in self.nodes), "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        wait_until(self.healthy, 30, "cluster_state:ok with 3 masters, each with a replica in sync")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def alive(self) -> list[Node]:
        return [n for n in self.nodes if n.process is not None]

    def info(self, node: Node) -> dict:
        client = node.client(self.password)
        try:
            return {"cluster": client.cluster("info"), "replication": client.info("replication")}
        finally:
            client.close()

    def healthy(self) -> bool:
        masters = 0
        for node in self.alive():
            info = self.info(node)
            if info["cluster"]["cluster_state"] != "ok":
                return False
            if info["replication"]["role"] == "master":
                masters += 1
                replicas = [v for k, v in info["replication"].items() if k.startswith("slave") and k[5:].isdigit()]
                if not replicas or any(r["state"] != "online" for r in replicas):
                    return False
        return masters == 3

    def master_of(self, key: str) -> Node:
        """The node serving `key`'s slot now."""
        client = self.alive()[0].client(self.password)
        try:
            slot = client.cluster("keyslot", key)
            for start, end, primary, *_ in client.cluster("slots"):
                if start <= slot <= end:
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        finally:
            client.close()
        raise AssertionError(f"no node serves {key}")

    def served(self) -> bool:
        """Every slot is served again by a live master, as every live node sees it."""
        alive = {n.port for n in self.alive()}
        for node in self.alive():
            client = node.client(self.password)
            try:
                if client.cluster("info")["cluster_state"] != "ok":
                    return False
                for _start, _end, primary, *_ in client.cluster("slots"):
                    if int(primary[1]) not in alive:
                        return False
            finally:
                client.close()
        return True


class SentinelSetup:
    MASTER = "obgw"

    def __init__(self, root: Path, tls: Path | None = None, sentinel_password: str | None = None) -> None:
        """`tls`: every node and Sentinel on TLS only (Node); `sentinel_password`: the Sentinels' own requirepass
        (and what they authenticate to each other with)."""
        self.password = secrets.token_urlsafe(12)
        self.sentinel_password = sentinel_password
        data = ["appendonly yes", "appendfsync everysec", 'save ""', f"requirepass {self.password}",
                f"masterauth {self.password}"]
        self.master = Node(root / "master", data, tls=tls)
        self.replica = Node(root / "replica", [*data, "replica-priority 100"], tls=tls)
        self.replica.lines.append(f"replicaof 127.0.0.1 {self.master.port}")
        guarded = [f"requirepass {sentinel_password}", f"sentinel sentinel-pass {sentinel_password}"] \
            if sentinel_password else []
        self.sentinels = [Node(root / f"sentinel{i}", [
            f"sentinel monitor {self.MASTER} 127.0.0.1 {self.master.port} 2",
            f"sentinel auth-pass {self.MASTER} {self.password}",
            f"sentinel down-after-milliseconds {self.MASTER} 1000",
            f"sentinel failover-timeout {self.MASTER} 10000",
            f"sentinel parallel-syncs {self.MASTER} 1", *guarded,
        ], sentinel=True, tls=tls) for i in range(3)]
        options = [f"ssl_ca_certs={tls / 'ca.pem'}"] if tls else []
        options += [f"sentinel_password={sentinel_password}"] if sentinel_password else []
        self.url = (f"redis{'s' if tls else ''}+sentinel://:{self.password}@"
                    + ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels) + f"/{self.MASTER}"
                    + ("?" + "&".join(options) if options else ""))

    def start(self) -> None:
        for node in (self.master, self.replica):
            node.start()
            node.wait_answers(self.password)
        wait_until(lambda: self.replica.client(self.password).info("replication")["master_link_status"] == "up",
                   20, "the replica in sync")
        for sentinel in self.sentinels:
            sentinel.start()
            sentinel.wait_answers(self.sentinel_password)
        wait_until(self._sentinels_agree, 30, "every Sentinel sees the master, its replica and the other Sentinels")

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            client = sentinel.client(self.sentinel_password)
            try:
                master = client.sentinel_master(self.MASTER)
                if int(master["num-other-sentinels"]) < 2 or int(master["num-slaves"]) < 1:
                    return False
            finally:
                client.close()
        return True

    def master_port(self) -> int:
        client = self.sentinels[0].client(self.sentinel_password)
        try:
            return int(client.sentinel_get_master_addr_by_name(self.MASTER)[1])
        finally:
            client.close()

    def replicated(self) -> bool:
        """The master the Sentinels name has a replica in sync."""
        port = self.master_port()
        node = next(n for n in (self.master, self.replica) if n.port == port)
        client = node.client(self.password)
        try:
            info = client.info("replication")
        finally:
            client.close()
        return info["role"] == "master" and info.get("slave0", {}).get("state") == "online"

    def stop(self) -> None:
        for node in (*self.sentinels, self.master, self.replica):
            node.stop()
