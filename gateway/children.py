"""Child processes that must not outlive the gateway (embedded Redis, the demo's sandbox bank)."""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess

from gateway.state import OWNER_ONLY_UMASK

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child when its parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def private_child() -> None:
    """preexec_fn of a child that writes state (embedded Redis, the sandbox bank's ledger): what it creates is the
    owner's alone (umask 077, gateway.state), and it dies with its parent."""
    os.umask(OWNER_ONLY_UMASK)
    die_with_parent()


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
