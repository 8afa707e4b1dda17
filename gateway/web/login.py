"""The customer's password check, shared by the authorization steps and the dashboard: the bank decides, and a
username is locked for a while after repeated failures, whichever session, page or worker they came through
(OWASP Authentication: protect against automated attacks)."""
from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from gateway.bank import Bank, Customer

MAX_FAILURES = 5
LOCK_SECONDS = 900


class TooManyAttempts(Exception):
    """The username has failed too often lately; nothing was asked of the bank."""


async def check_password(bank: Bank, store, username: str, password: str) -> Customer | None:
    """The customer if the bank accepts the password; None if not; TooManyAttempts when locked (BankUnavailable
    passes through)."""
    if await run_in_threadpool(store.login_failures, username) >= MAX_FAILURES:
        raise TooManyAttempts(username)
    customer = await bank.authenticate(username, password)
    if customer is None:
        await run_in_threadpool(store.count_login_failure, username, LOCK_SECONDS)
    else:
        await run_in_threadpool(store.clear_login_failures, username)
    return customer
