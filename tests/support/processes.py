"""Child processes for tests: started with a bounded wait for readiness, always stopped and reaped."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Process:
    """A child whose output lines are collected on a thread, so waiting for a line never blocks past a deadline."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.args = list(args)
        self.popen = subprocess.Popen(
            self.args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for_line(self, prefix: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith(prefix):
                return line.strip()
        self.stop()
        raise RuntimeError(f"{self.args[:4]} did not print {prefix!r}; output:\n{self.output()}")

    def wait_until(self, ready: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.args[:4]} exited with {self.popen.returncode}:\n{self.output()}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.args[:4]} not ready in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the whole process group (workers too), wait, then kill whatever is left."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._pump_thread.join(timeout=5)
        if not self._pump_thread.is_alive():
            self.popen.stdout.close()
        return self.popen.returncode


def python(*args: str) -> list[str]:
    return [sys.executable, *args]
