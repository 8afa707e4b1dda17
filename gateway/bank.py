"""The bank back-end as the customer pages need it: the customer's two login checks and their list of accounts.

The customer's username and password, and then the one-time code of their authenticator, go to the bank's own
authentication endpoints and nowhere else: the bank holds the password digests and authenticator secrets and
decides (and refuses a code used before); the gateway keeps none of them. One pooled aiohttp session per worker,
like `Forward`.
"""
from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import orjson

AUTHENTICATE_PATH = "/internal/authenticate"
OTP_PATH = "/internal/otp"
ACCOUNTS_PATH = "/open-banking/v3.1/aisp/accounts"
CUSTOMER_HEADER = "x-bank-customer-id"


class BankUnavailable(Exception):
    """The bank could not be asked; the page says so and nothing changes."""


@dataclass(frozen=True)
class Customer:
    customer_id: str
    display_name: str


@dataclass(frozen=True)
class AccountChoice:
    """What the consent page shows of one of the customer's own accounts, and how it is identified."""
    account_id: str
    label: str
    identifications: tuple[tuple[str, str], ...] = ()  # (SchemeName, Identification without spaces or dashes)

    def is_identified_by(self, reference: dict) -> bool:
        """Whether an OBCashAccount reference (a payment's DebtorAccount) names this account."""
        wanted = (reference.get("SchemeName"), _normalise(str(reference.get("Identification", ""))))
        return wanted in self.identifications


class Bank:
    def __init__(self, accounts_url: str | None, timeout_s: float = 5.0) -> None:
        self._url = accounts_url.rstrip("/") if accounts_url else None  # None: the policy has no accounts service
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout, skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def authenticate(self, username: str, password: str) -> Customer | None:
        status, body = await self._call("POST", AUTHENTICATE_PATH, json={"username": username, "password": password})
        if status in (400, 401):
            return None
        if status != 200 or not isinstance(body, dict):
            raise BankUnavailable(f"authentication answered {status}")
        return Customer(body["customer_id"], body["display_name"])

    async def check_code(self, customer_id: str, code: str) -> bool:
        """Whether the bank accepts `code` as the customer's current one-time code (it is then used up)."""
        status, body = await self._call("POST", OTP_PATH, json={"customer_id": customer_id, "otp": code})
        if status in (400, 401):
            return False
        if status != 200 or not isinstance(body, dict) or body.get("customer_id") != customer_id:
            raise BankUnavailable(f"the one-time code check answered {status}")
        return True

    async def accounts(self, customer_id: str) -> list[AccountChoice]:
        status, body = await self._call("GET", ACCOUNTS_PATH, headers={CUSTOMER_HEADER: customer_id})
        if status != 200 or not isinstance(body, dict):
            raise BankUnavailable(f"accounts answered {status}")
        return [AccountChoice(a["AccountId"], _label(a),
                              tuple((i.get("SchemeName"), _normalise(str(i.get("Identification", ""))))
                                    for i in a.get("Account") or ()))
                for a in body["Data"]["Account"]]

    async def _call(self, method: str, path: str, **kwargs) -> tuple[int, object]:
        if self._url is None:
            raise BankUnavailable("the policy declares no accounts service")
        if self._session is None:
            raise BankUnavailable("not started")
        try:
            async with self._session.request(method, self._url + path, allow_redirects=False, **kwargs) as response:
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BankUnavailable(str(exc) or type(exc).__name__) from None
        try:
            return response.status, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise BankUnavailable(f"{path} answered something that is not JSON") from None


def _normalise(identification: str) -> str:
    return identification.replace(" ", "").replace("-", "")


def _label(account: dict) -> str:
    """"Current account ••1234 (GBP)": enough for the customer to recognise their own account."""
    name = account.get("Nickname") or account.get("Description") or account.get("AccountSubType", "Account")
    ids = account.get("Account") or []
    tail = ids[0].get("Identification", "")[-4:] if ids else ""
    return f"{name} ••{tail} ({account.get('Currency', '')})" if tail else f"{name} ({account.get('Currency', '')})"
