"""web.login.CodeCheck (the second factor) against a real Redis and the real sandbox bank, with short limits: wrong
codes lock the customer's codes as wrong passwords lock a username, on counters of their own; they count against
the source address with the passwords; a right code resets its lock and gives the address its count back; the bank
accepts a code once."""
from __future__ import annotations

import asyncio
import time

import pytest
from support.authenticator import one_time_code, wrong_code

from gateway.bank import Bank
from gateway.store.logins import LoginStore
from gateway.store.redis import async_client
from gateway.web.login import CodeCheck, LoginLimits, PasswordCheck, TooManyAttempts

SOURCE = "198.51.100.30"
SHORT = {"first_lock": 0.5, "longest_lock": 1.0}


def _run(redis_url: str, accounts_url: str, body, **limits):
    async def go():
        client, bank = async_client(redis_url), Bank(accounts_url)
        await bank.start()
        try:
            passwords = PasswordCheck(bank, LoginStore(client, b"k" * 32), LoginLimits(**limits))
            return await body(passwords, passwords.second_factor())
        finally:
            await bank.close()
            await client.aclose()
    return asyncio.run(go())


def test_five_wrong_codes_lock_the_customers_codes_not_their_password_and_a_right_code_after_it_resets(
        redis_url, bank, pki):
    async def body(passwords: PasswordCheck, codes: CodeCheck):
        wrong = wrong_code(pki, "alice")
        for _ in range(5):
            assert await codes("alice", wrong, SOURCE) is False
        with pytest.raises(TooManyAttempts) as refused:
            await codes("alice", one_time_code(pki, "alice"), SOURCE)  # refused before the bank: not used up
        assert refused.value.reason == "web.otp_locked" and refused.value.retry_after >= 1
        assert await passwords("alice", "alice-pass", SOURCE) is not None  # the password is not locked by them
        await asyncio.sleep(SHORT["first_lock"] + 0.1)
        assert await codes("alice", one_time_code(pki, "alice"), SOURCE) is True
        for _ in range(4):  # the right code forgot the count: four more wrong ones do not lock
            assert await codes("alice", wrong, SOURCE) is False
        assert await codes("alice", one_time_code(pki, "alice"), SOURCE) is True
    _run(redis_url, bank[0], body, **SHORT)


def test_wrong_passwords_of_the_same_name_do_not_lock_the_customers_codes(redis_url, bank, pki):
    async def body(passwords: PasswordCheck, codes: CodeCheck):
        for _ in range(5):
            assert await passwords("alice", "wrong", SOURCE) is None
        with pytest.raises(TooManyAttempts, match="web.login_locked"):
            await passwords("alice", "alice-pass", SOURCE)
        assert await codes("alice", one_time_code(pki, "alice"), SOURCE) is True
    _run(redis_url, bank[0], body, **SHORT)


def test_wrong_codes_count_against_the_address_with_wrong_passwords_and_a_right_code_gives_its_count_back(
        redis_url, bank, pki):
    async def body(passwords: PasswordCheck, codes: CodeCheck):
        assert await passwords("bob", "wrong", SOURCE) is None
        assert await codes("bob", wrong_code(pki, "bob"), SOURCE) is False
        assert await codes("bob", one_time_code(pki, "bob"), SOURCE) is True  # counted, then given back
        assert await codes("bob", wrong_code(pki, "bob"), SOURCE) is False   # the third failure: the limit
        with pytest.raises(TooManyAttempts) as refused:
            await passwords("bob", "bob-pass", SOURCE)
        assert refused.value.reason == "web.login_throttled"
        with pytest.raises(TooManyAttempts, match="web.login_throttled"):
            await codes("bob", one_time_code(pki, "bob"), SOURCE)
        assert await codes("bob", one_time_code(pki, "bob"), "198.51.100.31") is True  # another address is not
    _run(redis_url, bank[0], body, per_source=3)


def test_the_bank_accepts_a_code_once(redis_url, bank, pki):
    async def body(passwords: PasswordCheck, codes: CodeCheck):
        code = one_time_code(pki, "bob")
        assert await codes("bob", code, SOURCE) is True
        assert await codes("bob", code, SOURCE) is False  # replayed, even at once and from the same place
        assert await codes("alice", one_time_code(pki, "bob"), SOURCE) is False  # bob's code is not alice's
    _run(redis_url, bank[0], body)


def test_counting_comes_first_so_parallel_guesses_cannot_all_reach_the_bank(redis_url, bank, pki):
    async def body(passwords: PasswordCheck, codes: CodeCheck):
        wrong = wrong_code(pki, "alice")
        started = time.monotonic()
        answers = await asyncio.gather(*(codes("alice", wrong, SOURCE) for _ in range(30)),
                                       return_exceptions=True)
        assert time.monotonic() - started < 5
        assert sum(answer is False for answer in answers) == 5  # five reached the bank; the rest were refused
        assert all(isinstance(a, TooManyAttempts) and a.reason == "web.otp_locked" for a in answers if a is not False)
    _run(redis_url, bank[0], body, per_source=100, **SHORT)  # all from one address: only the code's lock counts here
