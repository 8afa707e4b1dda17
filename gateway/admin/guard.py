"""What stands before the admin password check: the Host the request names, and a bound on guessing.

- DNS rebinding: a web page the operator visits can make the browser send requests to 127.0.0.1 under the
  attacker's own host name. The admin listener answers only requests whose `Host` is an IP address, `localhost`
  or its own configured name; any other name is 421 Misdirected Request (RFC 9110 §15.5.20). A request with no
  `Host` at all (HTTP/1.0, a monitor) is no browser's, so it is answered.
- Each password check is an scrypt (~16 MiB, tens of ms): at most `concurrent` run at once, a request past that
  is told to come back (503) rather than queued, so a flood of guesses cannot exhaust the host.
- After `max_failures` wrong passwords in a row, no password is checked for a lock that starts short and doubles
  with each further lock, up to `longest_lock` (a stranger cannot lock the operator out for long; a guesser gets a
  handful of tries an hour). Attempts during a lock are refused without extending it; the right password resets it.
"""
from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from enum import Enum


def names_this_listener(host_header: str, listener_host: str) -> bool:
    """Whether a `Host` value can be this listener's: an IP literal (DNS rebinding needs a name, so an address is
    never one), `localhost`, or the host name the listener was configured with; any port."""
    name = host_header.strip().lower()
    name = name[1:name.index("]")] if name.startswith("[") and "]" in name else name.rsplit(":", 1)[0]
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in ("localhost", listener_host.lower())


class Verdict(Enum):
    RIGHT = "right"
    WRONG = "wrong"
    BUSY = "busy"        # too many checks at once: try again shortly
    LOCKED = "locked"    # too many wrong passwords lately: try again after `retry_after`


class PasswordGuard:
    def __init__(self, concurrent: int = 2, max_failures: int = 10, first_lock: float = 60.0,
                 longest_lock: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._slots = threading.BoundedSemaphore(concurrent)
        self._max_failures, self._first_lock, self._longest_lock = max_failures, first_lock, longest_lock
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._locks = 0               # locks since the last right password: each one doubles the next
        self._locked_until = 0.0

    def retry_after(self) -> int:
        with self._lock:
            return max(1, int(self._locked_until - self._clock() + 0.999))

    def check(self, matches: Callable[[], bool]) -> Verdict:
        """Run `matches` (the scrypt check) unless locked or already `concurrent` checks are running."""
        with self._lock:
            if self._clock() < self._locked_until:
                return Verdict.LOCKED
        if not self._slots.acquire(blocking=False):
            return Verdict.BUSY
        try:
            right = matches()
        finally:
            self._slots.release()
        with self._lock:
            if right:
                self._failures = self._locks = 0
                return Verdict.RIGHT
            self._failures += 1
            if self._failures >= self._max_failures:
                self._failures = 0
                self._locked_until = self._clock() + min(self._first_lock * 2 ** self._locks, self._longest_lock)
                self._locks += 1
        return Verdict.WRONG
