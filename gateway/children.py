"""Child processes that must not outlive the gateway (embedded Redis, the demo's sandbox bank)."""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time

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


def listening(process: subprocess.Popen, port: int, seconds: float, pause: float = 0.05) -> bool:
    """Whether `process` comes to accept connections on 127.0.0.1:`port` within `seconds` (False as soon as it
    exits): how a parent waits for the server it started."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(pause)
    return False
