"""The customer's login checks: the password (the authorization steps and the dashboard) and then, in the
authorization steps, the one-time code of their authenticator (PSD2 RTS Art. 4: strong customer authentication).
The bank decides both, and the gateway limits how many guesses reach it, whichever session, page or worker they come
through (OWASP Authentication Cheat Sheet, "Protect against automated attacks"; NIST SP 800-63B §5.2.2, rate
limiting). One-time codes are limited exactly as passwords are (below), per customer instead of per username, on
counters of their own (store.logins `second_factor`: wrong codes lock the customer's codes, not their password),
and a wrong code counts against the source address as a wrong password does.

- Every attempt is counted in Redis *before* the bank is asked (store.logins, one script each): parallel posts
  cannot all read "not locked yet" and all be checked. A right password forgets the username's count.
- Per username: the `per_lock`-th attempt since the last success or lock locks the username, first for `first_lock`
  seconds, doubling with each lock up to `longest_lock`; attempts while it is locked are refused without reaching the
  bank and without extending it, so a stranger can keep the real customer out for a lock at a time, never for good,
  and the right password once it ends works (and starts the doubling afresh). All is forgotten `forget` seconds
  after the last attempt or lock.
- Per source address (password spraying, one address trying many usernames): at most `per_source` wrong passwords
  in a `source_window`, across usernames, then every attempt from it is refused before the bank. It is counted
  before the bank is asked too; a right password, or an attempt refused by a username's lock, gives its count back,
  so customers behind one NAT logging in, or one of them retrying a locked username, do not shut out the others.
An attempt the bank could not answer stays counted (fail closed).
"""
from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from gateway.bank import Bank, Customer
from gateway.store.logins import LoginStore

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoginLimits:
    per_lock: int = 5
    first_lock: float = 60.0        # seconds
    longest_lock: float = 900.0
    forget: float = 900.0
    per_source: int = 20
    source_window: float = 900.0


class TooManyAttempts(Exception):
    """Refused before the bank was asked: `reason` is web.login_locked (the username), web.otp_locked (the
    customer's codes) or web.login_throttled (the source address; what the page says is in errors.PAGE_REASONS),
    `retry_after` the whole seconds until it may try again."""

    def __init__(self, reason: str, retry_ms: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = max(1, math.ceil(retry_ms / 1000))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class _Guarded:
    """One factor's check, counted before the bank is asked (see the module docstring)."""

    def __init__(self, bank: Bank, store: LoginStore, limits: LoginLimits = LoginLimits()) -> None:
        self.bank, self.store, self.limits = bank, store, limits

    async def _guarded(self, counters: LoginStore, who: str, source: str, reason: str,
                       ask: Callable[[], Awaitable[T]]) -> T:
        """What `ask()` answers, once the attempt on `who` is counted on `counters` and against the source address;
        TooManyAttempts instead when refused before the bank (`reason`: what a lock on `who` is refused as)."""
        limits = self.limits
        wait = await self.store.take_source(source, limits.per_source, _ms(limits.source_window))
        if wait:
            raise TooManyAttempts("web.login_throttled", wait)
        wait = await counters.take_attempt(who, limits.per_lock, _ms(limits.first_lock), _ms(limits.longest_lock),
                                           _ms(limits.forget))
        if wait:
            await self.store.refund_source(source)
            raise TooManyAttempts(reason, wait)
        answer = await ask()
        if answer:
            await counters.forget_attempts(who)
            await self.store.refund_source(source)
        return answer


class PasswordCheck(_Guarded):
    async def __call__(self, username: str, password: str, source: str) -> Customer | None:
        """The customer if the bank accepts the password, None if not; TooManyAttempts when refused before the bank
        (BankUnavailable passes through). `source`: the caller's address (client_address.source_of)."""
        return await self._guarded(self.store, username, source, reason="web.login_locked",
                                   ask=lambda: self.bank.authenticate(username, password))

    def second_factor(self) -> CodeCheck:
        """The one-time code check, asking the same bank under the same limits."""
        return CodeCheck(self.bank, self.store, self.limits)


class CodeCheck(_Guarded):
    def __init__(self, bank: Bank, store: LoginStore, limits: LoginLimits = LoginLimits()) -> None:
        super().__init__(bank, store, limits)
        self.codes = store.second_factor()

    async def __call__(self, customer_id: str, code: str, source: str) -> bool:
        """Whether the bank accepts `code` as the customer's one-time code (whom the password named); TooManyAttempts
        (web.otp_locked, web.login_throttled) when refused before the bank. BankUnavailable passes through."""
        return await self._guarded(self.codes, customer_id, source, reason="web.otp_locked",
                                   ask=lambda: self.bank.check_code(customer_id, code))
