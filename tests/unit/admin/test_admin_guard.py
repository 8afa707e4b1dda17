"""The admin listener's guard: the Host it answers for, one scrypt at a time, and a growing lock on guessing."""
from __future__ import annotations

import base64
import threading

import pytest

from gateway.admin.credentials import hash_password
from gateway.admin.guard import PasswordGuard, Verdict, names_this_listener
from gateway.admin.server import AdminApp

PASSWORD = "battery-horse-staple"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _app(tmp_path, guard: PasswordGuard | None = None) -> AdminApp:
    (tmp_path / "admin-password").write_text(hash_password(PASSWORD) + "\n")
    app = AdminApp("redis://127.0.0.1:1/0", {}, tmp_path / "admin-password", guard)
    return app


def _get(app: AdminApp, path: str = "/admin", host: str = "127.0.0.1:8090", password: str | None = None):
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "HTTP_HOST": host}
    if password is not None:
        environ["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
    answer = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)
    answer["body"] = b"".join(app(environ, start_response))
    return answer


@pytest.mark.parametrize("host", ["127.0.0.1:8090", "127.0.0.1", "LOCALHOST:8090", "[::1]:8090", "10.1.2.3:9",
                                  "admin.bank.internal:8090"])
def test_addresses_localhost_and_the_configured_name_name_the_listener(host):
    assert names_this_listener(host, "admin.bank.internal")


@pytest.mark.parametrize("host", ["evil.example:8090", "evil.example", "127.0.0.1.evil.example:8090",
                                  "localhost.evil.example", "[::1", ""])
@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/admin"])
def test_a_rebound_host_name_is_421_on_every_path(tmp_path, host, path):
    # DNS rebinding: the browser sends the attacker's host name to 127.0.0.1; nothing is answered for it.
    answer = _get(_app(tmp_path), path, host=host, password=PASSWORD)
    assert answer["status"] == 421 and b"admin" not in answer["body"].lower()


def test_a_request_without_host_is_no_browsers_and_is_answered(tmp_path):
    app = _app(tmp_path)
    answer = {}
    body = b"".join(app({"PATH_INFO": "/nowhere", "REQUEST_METHOD": "GET"},
                        lambda status, headers: answer.setdefault("status", int(status.split()[0]))))
    assert answer["status"] == 404 and body == b"not found\n"


def test_the_right_host_and_password_still_reach_the_page_check(tmp_path):
    # Past the guard the page reads Redis; here none answers, which the page reports as 503 (not 401, not 421).
    assert _get(_app(tmp_path), password=PASSWORD, host="LOCALHOST:8090")["status"] == 503
    assert _get(_app(tmp_path), password="wrong-password")["status"] == 401


def test_ten_wrong_passwords_lock_the_check_even_for_the_right_one_then_it_reopens():
    clock = Clock()
    guard = PasswordGuard(max_failures=10, first_lock=60, longest_lock=900, clock=clock)
    checked = []

    def wrong():
        checked.append(1)
        return False
    for _ in range(10):
        assert guard.check(wrong) is Verdict.WRONG
    assert guard.check(lambda: True) is Verdict.LOCKED and guard.retry_after() == 60
    clock.now += 59
    assert guard.check(wrong) is Verdict.LOCKED      # refused without a check, and the lock is not extended
    assert len(checked) == 10 and guard.retry_after() == 1
    clock.now += 1
    assert guard.check(lambda: True) is Verdict.RIGHT


def test_each_further_lock_doubles_up_to_the_longest_and_the_right_password_resets_it():
    clock = Clock()
    guard = PasswordGuard(max_failures=3, first_lock=60, longest_lock=200, clock=clock)
    for expected in (60, 120, 200, 200):
        for _ in range(3):
            assert guard.check(lambda: False) is Verdict.WRONG
        assert guard.retry_after() == expected
        clock.now += expected
    assert guard.check(lambda: True) is Verdict.RIGHT
    for _ in range(3):
        guard.check(lambda: False)
    assert guard.retry_after() == 60


def test_no_more_than_the_allowed_checks_run_at_once():
    guard = PasswordGuard(concurrent=2)
    release, running = threading.Event(), threading.Barrier(3)

    def slow() -> bool:
        running.wait(5)
        release.wait(5)
        return True
    threads = [threading.Thread(target=guard.check, args=(slow,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    running.wait(5)                                   # both checks are in scrypt now
    assert guard.check(lambda: True) is Verdict.BUSY  # a third is turned away, not queued
    release.set()
    for thread in threads:
        thread.join(5)
    assert guard.check(lambda: True) is Verdict.RIGHT


def test_a_locked_listener_answers_429_with_retry_after(tmp_path):
    app = _app(tmp_path, PasswordGuard(max_failures=2, first_lock=30))
    assert [_get(app, password="nope-nope-nope")["status"] for _ in range(2)] == [401, 401]
    locked = _get(app, password=PASSWORD)
    assert locked["status"] == 429 and 1 <= int(locked["headers"]["Retry-After"]) <= 30
