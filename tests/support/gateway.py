"""Starting the real gateway (`python -m gateway serve`) over real TLS, and TPP-side HTTPS clients."""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import redis
from support.ports import free_port
from support.processes import Process, python

from gateway.oauth.signing_keys import KeyEncryptionKey
from gateway.settings import Settings
from gateway.store.names import SIGNING_KEYS


def gateway_env(var_dir: Path, pki: Path, policy_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBGW_") and k != "REDIS_URL"}
    env.update({
        "OBGW_VAR_DIR": str(var_dir), "OBGW_POLICY_DIR": str(policy_dir), "OBGW_TLS_CERT": str(pki / "server.pem"),
        "OBGW_TLS_KEY": str(pki / "server.key"), "OBGW_CLIENT_CA": str(pki / "ca.pem"),
        "OBGW_AUDIT_CHECKPOINT_SECONDS": "1", **extra,
    })
    return env


class Gateway:
    def __init__(self, env: dict[str, str], workers: int = 2, port: int | None = None) -> None:
        """`port`: reuse a port (a restart keeps the issuer URL, so tokens issued before still verify)."""
        self.port, self.admin_port = port or free_port(), free_port()
        self.env = dict(env, OBGW_PORT=str(self.port), OBGW_ADMIN_PORT=str(self.admin_port),
                        OBGW_WORKERS=str(workers))
        self.base = f"https://127.0.0.1:{self.port}"
        # Without REDIS_URL, the gateway's own embedded Redis, asked for explicitly as an operator would.
        embedded = () if "REDIS_URL" in self.env else ("--embedded-redis",)
        self.process = Process(python("-m", "gateway", "serve", *embedded), env=self.env)
        self.process.wait_for_line("obgw: gateway", timeout=30)
        self.process.wait_until(self._answers, timeout=30)

    def _answers(self) -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{self.admin_port}/healthz", timeout=1)
            with httpx.Client(verify=client_context(Path(self.env["OBGW_CLIENT_CA"])), timeout=1) as client:
                client.get(self.base + "/")
            return True
        except httpx.TransportError:
            return False

    @property
    def redis_url(self) -> str:
        """REDIS_URL, else the embedded Redis this gateway runs (found as the CLI finds it)."""
        return self.env.get("REDIS_URL") or (Path(self.env["OBGW_VAR_DIR"]) / "redis" / "redis.url").read_text().strip()

    def signing_key(self, kid: str):
        """The private half of the gateway's signing key `kid`, opened with its key-encryption key as only the gateway
        can (Redis alone does not give it): for tests that mint tokens whose claims alone are wrong."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            record = json.loads(client.hget(SIGNING_KEYS, kid))
        finally:
            client.close()
        kek = KeyEncryptionKey.load(Settings.load(environ=self.env).key_encryption_key_file)
        return kek.open(kid, record["sealed_private_key"])

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`obgw ...` against this gateway's state (its embedded Redis is found through OBGW_VAR_DIR)."""
        return subprocess.run([sys.executable, "-m", "gateway", *args], env=self.env, capture_output=True, text=True,
                              timeout=60)

    def audit(self, *filters: str) -> list[dict]:
        done = self.cli("audit", "search", "--json", *filters)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    def register_tpps(self, pki: Path, names=("tpp-demo", "tpp-other")) -> None:
        """Register TPPs from their certs/dev-style JSON files, as `make demo` does."""
        for name in names:
            done = self.cli("clients", "add", name, "--from-json", str(pki / f"{name}.json"), "--replace")
            assert done.returncode == 0, done.stderr

    def stop(self) -> int:
        return self.process.stop()


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert:
        context.load_cert_chain(str(cert), str(key))
    return context


def tpp_client(pki: Path, name: str | None = "tpp-demo", token: str | None = None, **transport_options) -> httpx.Client:
    """An HTTPS client presenting `name`'s certificate (None: no certificate), sending `token` as its bearer."""
    context = client_context(pki / "ca.pem", pki / f"{name}.pem" if name else None,
                             pki / f"{name}.key" if name else None)
    # With a token, calls are made with the customer present, so they do not use up the unattended allowance.
    headers = {"Authorization": f"Bearer {token}", "x-fapi-customer-ip-address": "198.51.100.7"} if token else {}
    return httpx.Client(transport=httpx.HTTPTransport(verify=context, **transport_options), timeout=10,
                        headers=headers)


def bank_gateway(root: Path, pki: Path, bank: tuple[str, str], workers: int = 2, register: bool = True,
                 **extra: str) -> Gateway:
    """`obgw serve` with the shipped policies/ in front of the sandbox bank (`bank`: accounts and payments URLs),
    the dev PKI's directory trusted for DCR, and the demo TPPs registered."""
    from support.processes import ROOT
    env = gateway_env(root / "var", pki, ROOT / "policies", OBGW_SERVICE_ACCOUNTS_URL=bank[0],
                      OBGW_SERVICE_PAYMENTS_URL=bank[1], OBGW_DIRECTORY_JWKS=str(pki / "directory-jwks.json"),
                      **extra)
    gw = Gateway(env, workers=workers)
    return with_demo_tpps(gw, pki) if register else gw


def with_demo_tpps(gw: Gateway, pki: Path) -> Gateway:
    """`gw` with the demo TPPs registered, or stopped if that fails: a fixture that fails before it yields has no
    teardown, so the gateway is never left running."""
    try:
        gw.register_tpps(pki)
    except BaseException:
        gw.stop()
        raise
    return gw
