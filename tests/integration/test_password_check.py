"""web.login.PasswordCheck against a real Redis and the real sandbox bank, with short limits: the username lock is
short, grows with each lock up to a ceiling, is never extended by attempts made while it holds, and the right
password after it ends gets in and starts the growth afresh; the per-address count of failed logins."""
from __future__ import annotations

import asyncio
import time

import pytest

from gateway.bank import Bank
from gateway.store.logins import LoginStore
from gateway.store.redis import async_client
from gateway.web.login import LoginLimits, PasswordCheck, TooManyAttempts

FIRST, LONGEST = 0.5, 1.2  # seconds: locks of 0.5, 1.0, then 1.2 (not 2.0)
SOURCE = "198.51.100.20"


def _run(redis_url: str, accounts_url: str, body, **limits):
    async def go():
        client, bank = async_client(redis_url), Bank(accounts_url)
        await bank.start()
        try:
            return await body(PasswordCheck(bank, LoginStore(client, b"k" * 32), LoginLimits(**limits)))
        finally:
            await bank.close()
            await client.aclose()
    return asyncio.run(go())


async def _lock_length(check: PasswordCheck, password: str) -> tuple[float, object]:
    """Try every 20 ms until an attempt is not refused: (seconds it took, what that attempt gave)."""
    started = time.monotonic()
    while True:
        try:
            answer = await check("alice", password, SOURCE)
        except TooManyAttempts as refused:
            assert refused.reason == "web.login_locked" and refused.retry_after >= 1
            await asyncio.sleep(0.02)
            continue
        return time.monotonic() - started, answer


async def _fail(check: PasswordCheck, times: int) -> None:
    for _ in range(times):
        assert await check("alice", "wrong", SOURCE) is None


def test_the_lock_grows_to_its_ceiling_is_not_extended_by_tries_and_the_right_password_resets_it(redis_url, bank):
    async def body(check):
        await _fail(check, 5)
        first, answer = await _lock_length(check, "wrong")  # dozens of refused tries meanwhile: no longer for them
        assert answer is None  # counted: the first attempt of the next round
        await _fail(check, 4)
        second, _ = await _lock_length(check, "wrong")
        await _fail(check, 4)
        third, customer = await _lock_length(check, "alice-pass")
        assert customer is not None and customer.customer_id  # the right password once the lock ends
        await _fail(check, 5)
        after_reset, customer = await _lock_length(check, "alice-pass")
        assert customer is not None
        return first, second, third, after_reset

    first, second, third, after_reset = _run(redis_url, bank[0], body, first_lock=FIRST, longest_lock=LONGEST,
                                                per_source=100)
    assert first < 0.8                    # 0.5 s
    assert 0.8 <= second < 1.5            # doubled: 1.0 s
    assert 1.0 <= third < 1.7             # 1.2 s, the ceiling, not 2.0 s
    assert after_reset < 0.8              # the success started the growth afresh


def test_parallel_wrong_passwords_reach_the_bank_at_most_five_times(redis_url, bank):
    async def body(check):
        return await asyncio.gather(*(check("alice", "wrong", f"198.51.100.{n}") for n in range(30)),
                                    return_exceptions=True)

    answers = _run(redis_url, bank[0], body)
    assert sum(a is None for a in answers) == 5  # the bank was asked five times
    assert all(isinstance(a, TooManyAttempts) and a.reason == "web.login_locked" for a in answers if a is not None)


def test_one_address_gets_a_bounded_number_of_failures_across_usernames_and_a_success_gives_its_count_back(
        redis_url, bank):
    async def body(check):
        assert await check("alice", "alice-pass", SOURCE) is not None
        for n in range(3):
            assert await check(f"nobody-{n}", "guess", SOURCE) is None
        with pytest.raises(TooManyAttempts) as throttled:
            await check("nobody-3", "guess", SOURCE)
        assert throttled.value.reason == "web.login_throttled" and throttled.value.retry_after == 1
        with pytest.raises(TooManyAttempts):  # the right password too: the address is refused before the bank
            await check("bob", "bob-pass", SOURCE)
        assert await check("bob", "bob-pass", "198.51.100.21") is not None  # another address is not
        await asyncio.sleep(0.6)
        return await check("bob", "bob-pass", SOURCE)

    assert _run(redis_url, bank[0], body, per_source=3, source_window=0.5) is not None  # the window ended
