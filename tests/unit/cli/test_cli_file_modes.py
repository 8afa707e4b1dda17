"""What a command writes is born owner-only, like the gateway's own state (no `serve` needed before it)."""
from __future__ import annotations

import io
import os
import stat

from gateway.cli import main


def test_a_command_run_before_any_gateway_creates_var_owner_only(tmp_path, monkeypatch):
    old = os.umask(0o022)  # a usual login shell's
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO("battery-horse-staple\n"))
        assert main(["admin", "password", "--var-dir", str(tmp_path / "var")]) == 0
    finally:
        os.umask(old)
    for path in (tmp_path / "var", tmp_path / "var" / "admin-password"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))
