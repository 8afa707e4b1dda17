"""The state directory (var/) after a real `obgw demo` run is the owner's alone, and `obgw serve` runs a private
Redis only when asked (`--embedded-redis`): without REDIS_URL it refuses to start, naming it (CONTRACT §2)."""
from __future__ import annotations

import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.gateway import client_context, gateway_env
from support.ports import free_port
from support.processes import ROOT, Process, python
from support.tpp import ACCOUNTS, Tpp

pytestmark = pytest.mark.e2e


def _loose(var: Path) -> list[str]:
    """Every file or directory under `var` (and itself) that its group or others may read, write or enter."""
    entries = [var, *var.rglob("*")]
    return [f"{p.relative_to(var.parent)} {stat.filemode(p.lstat().st_mode)}" for p in entries
            if p.lstat().st_mode & 0o077]


def _answers(base: str, pki: Path) -> bool:
    try:
        httpx.get(base + "/", verify=client_context(pki / "ca.pem"), timeout=1)
        return True
    except httpx.TransportError:
        return False


def test_after_a_demo_run_nothing_under_var_is_open_to_group_or_others(tmp_path, pki):
    var = tmp_path / "var"
    (var / "audit").mkdir(parents=True)
    var.chmod(0o755)
    (var / "audit").chmod(0o755)
    (var / "audit" / "checkpoints.jsonl").write_text("")  # as an older version left them: 0644 in 0755
    (var / "audit" / "checkpoints.jsonl").chmod(0o644)
    port = free_port()
    env = gateway_env(var, pki, ROOT / "policies", OBGW_PORT=str(port), OBGW_ADMIN_PORT=str(free_port()),
                      OBGW_DIRECTORY_JWKS=str(pki / "directory-jwks.json"))
    demo = Process(python("-m", "gateway", "demo", "--accounts-port", str(free_port()),
                          "--payments-port", str(free_port())), env=env)
    try:
        demo.wait_for_line("obgw demo is running", timeout=60)
        demo.wait_until(lambda: _answers(f"https://127.0.0.1:{port}", pki), timeout=30)  # the workers are up
        tpp = Tpp(f"https://127.0.0.1:{port}", pki, "tpp-demo")
        try:
            assert tpp.get(ACCOUNTS, tpp.consent_token(["ReadAccountsBasic"])).status_code == 200
        finally:
            tpp.close()
        # A worker anchors its audit chain (every second here) into the file an older version left open.
        demo.wait_until(lambda: (var / "audit" / "checkpoints.jsonl").stat().st_size > 0, timeout=10)
    finally:
        assert demo.stop() == 0, demo.output()
    for written in ("redis/appendonlydir", "redis/redis.log", "redis/.lock", "audit/checkpoints.jsonl", "sandbox",
                    "metrics"):
        assert (var / written).exists(), written
    assert [p for p in (var / "redis" / "appendonlydir").iterdir()]
    assert _loose(var) == []


def test_serve_without_redis_url_refuses_to_start_naming_it_and_starts_no_redis(tmp_path, pki):
    port = free_port()
    env = gateway_env(tmp_path / "var", pki, ROOT / "policies", OBGW_PORT=str(port))
    done = subprocess.run([sys.executable, "-m", "gateway", "serve"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "obgw: REDIS_URL is not set: point it at the Redis every gateway process shares, or pass --embedded-redis "
        f"for a private one under {tmp_path / 'var' / 'redis'} (one host only)\n")
    assert not (tmp_path / "var").exists()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing was listening
