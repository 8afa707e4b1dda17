"""The sandbox bank's two HTTP services: accounts (AISP reads and login) and payments (PISP).

They speak UK Open Banking v3.1.11 shapes over plain HTTP and trust their one caller, the gateway, to
have authenticated the customer and checked consent: the customer a call is for is named in the
`x-bank-customer-id` header, and a payment's debtor account in `x-bank-debtor-account-id`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox.data import Bank
from gateway.sandbox.ledger import Account, Payment, Rejected, money, parse_money

CUSTOMER_HEADER = "x-bank-customer-id"
DEBTOR_ACCOUNT_HEADER = "x-bank-debtor-account-id"
AISP = "/open-banking/v3.1/aisp"
PISP = "/open-banking/v3.1/pisp"

_AMOUNT = re.compile(r"^\d{1,13}$|^\d{1,13}\.\d{1,5}$")
# An unencoded "+" in a query string arrives as a space: "...T10:00:00 01:00" means "+01:00".
_SPACED_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class OBError(Exception):
    """An error answered with an OBErrorResponse1 body."""

    def __init__(self, status: int, code: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.path = status, code, message, path


def _error_response(
    status: int, code: str, message: str, path: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    error = {"ErrorCode": code, "Message": message}
    if path:
        error["Path"] = path
    body = {"Code": str(status), "Id": str(uuid.uuid4()), "Message": message, "Errors": [error]}
    return JSONResponse(body, status_code=status, headers=headers)


async def _on_ob_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OBError)
    return _error_response(exc.status, exc.code, exc.message, exc.path)


async def _on_rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Rejected)
    return _error_response(400, exc.code, exc.message, exc.path)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "UK.OBIE.Resource.NotFound" if exc.status_code == 404 else "UK.OBIE.UnexpectedError"
    return _error_response(exc.status_code, code, exc.detail, headers=exc.headers)


_HANDLERS = {OBError: _on_ob_error, Rejected: _on_rejected, HTTPException: _on_http_error}


def _customer(request: Request, bank: Bank) -> str:
    customer_id = request.headers.get(CUSTOMER_HEADER)
    if not customer_id:
        raise OBError(403, "UK.OBIE.Header.Missing", f"{CUSTOMER_HEADER} is required", CUSTOMER_HEADER)
    if customer_id not in bank.customers:
        raise OBError(403, "UK.OBIE.Header.Invalid", "unknown customer", CUSTOMER_HEADER)
    return customer_id


def _document(request: Request, data: dict, meta: dict | None = None) -> dict:
    return {"Data": data, "Links": {"Self": str(request.url)}, "Meta": meta or {"TotalPages": 1}}


def _query_time(request: Request, name: str) -> datetime | None:
    """Optional ISO 8601 query parameter; without a zone it is taken as UTC."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(_SPACED_OFFSET.sub(r"\1+\2", raw))
    except ValueError:
        raise OBError(400, "UK.OBIE.Field.InvalidDate", f"{name} is not an ISO 8601 date-time", name) from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _balances(bank: Bank, account: Account) -> list[dict]:
    """InterimBooked from the books, and InterimAvailable including any overdraft or card limit."""
    booked = bank.ledger.balance(account.account_id)
    moment = bank.ledger.balance_time(account.account_id).isoformat()

    def balance(kind: str, pence: int) -> dict:
        return {
            "AccountId": account.account_id,
            "CreditDebitIndicator": "Credit" if pence >= 0 else "Debit",
            "Type": kind,
            "DateTime": moment,
            "Amount": {"Amount": money(pence), "Currency": account.currency},
        }

    available = balance("InterimAvailable", booked + account.credit_limit)
    if account.credit_limit:
        available["CreditLine"] = [{
            "Included": True,
            "Type": "Credit" if account.sub_type == "CreditCard" else "Pre-Agreed",
            "Amount": {"Amount": money(account.credit_limit), "Currency": account.currency},
        }]
    return [balance("InterimBooked", booked), available]


def create_accounts_app(bank: Bank) -> Starlette:
    """Accounts service: login check for the gateway's consent page, and AISP reads."""
    ledger = bank.ledger

    def owned_account(request: Request) -> Account:
        account = ledger.owned(_customer(request, bank), request.path_params["account_id"])
        if account is None:
            raise OBError(404, "UK.OBIE.Resource.NotFound", "account not found", "AccountId")
        return account

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def authenticate(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        if not (isinstance(body, dict) and all(isinstance(body.get(k), str) for k in ("username", "password"))):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        # scrypt takes tens of milliseconds: keep it off the event loop.
        login = await run_in_threadpool(bank.credentials.authenticate, body["username"], body["password"])
        if login is None:
            return JSONResponse({"error": "invalid_credentials"}, status_code=401)
        return JSONResponse({"customer_id": login.customer_id, "display_name": login.display_name})

    async def accounts(request: Request) -> Response:
        owned = ledger.accounts_of(_customer(request, bank))
        wanted = request.query_params.get("account_ids")
        if wanted:
            ids = set(wanted.split(","))
            owned = [account for account in owned if account.account_id in ids]
        return JSONResponse(_document(request, {"Account": [account.to_ob() for account in owned]}))

    async def account(request: Request) -> Response:
        return JSONResponse(_document(request, {"Account": [owned_account(request).to_ob()]}))

    async def balances(request: Request) -> Response:
        return JSONResponse(_document(request, {"Balance": _balances(bank, owned_account(request))}))

    async def transactions(request: Request) -> Response:
        account = owned_account(request)
        since, until = _query_time(request, "fromBookingDateTime"), _query_time(request, "toBookingDateTime")
        if since and until and since > until:
            raise OBError(400, "UK.OBIE.Field.InvalidDate", "fromBookingDateTime is after toBookingDateTime",
                          "fromBookingDateTime")
        entries = ledger.entries(account.account_id)
        meta: dict = {"TotalPages": 1}
        if entries:
            meta |= {"FirstAvailableDateTime": entries[0].booked.isoformat(),
                     "LastAvailableDateTime": entries[-1].booked.isoformat()}
        records = [
            entry.to_ob(account.currency)
            for entry in reversed(entries)
            if (since is None or entry.booked >= since) and (until is None or entry.booked <= until)
        ]
        return JSONResponse(_document(request, {"Transaction": records}, meta))

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/internal/authenticate", authenticate, methods=["POST"]),
            Route(f"{AISP}/accounts", accounts),
            Route(f"{AISP}/accounts/{{account_id}}", account),
            Route(f"{AISP}/accounts/{{account_id}}/balances", balances),
            Route(f"{AISP}/accounts/{{account_id}}/transactions", transactions),
        ],
        exception_handlers=_HANDLERS,
    )


def _field(container: dict, name: str, path: str, kind: type) -> Any:
    value = container.get(name)
    if value is None:
        raise OBError(400, "UK.OBIE.Field.Missing", f"{path} is required", path)
    if not isinstance(value, kind) or not value:
        raise OBError(400, "UK.OBIE.Field.Invalid", f"{path} must be a non-empty {kind.__name__}", path)
    return value


def _read_payment(body: Any) -> tuple[str, dict]:
    """(ConsentId, Initiation) from an OBWriteDomestic2 body, checking what the bank relies on."""
    if not isinstance(body, dict):
        raise OBError(400, "UK.OBIE.Resource.InvalidFormat", "body must be a JSON object")
    data = _field(body, "Data", "Data", dict)
    consent_id = _field(data, "ConsentId", "Data.ConsentId", str)
    initiation = _field(data, "Initiation", "Data.Initiation", dict)
    for name in ("InstructionIdentification", "EndToEndIdentification"):
        _field(initiation, name, f"Data.Initiation.{name}", str)
    amount = _field(initiation, "InstructedAmount", "Data.Initiation.InstructedAmount", dict)
    path = "Data.Initiation.InstructedAmount.Amount"
    value = _field(amount, "Amount", path, str)
    _field(amount, "Currency", "Data.Initiation.InstructedAmount.Currency", str)
    if not _AMOUNT.match(value):
        raise OBError(400, "UK.OBIE.Field.Invalid", "amount is not an OB amount string", path)
    try:
        pence = parse_money(value)
    except ValueError as exc:
        raise OBError(400, "UK.OBIE.Field.Invalid", str(exc), path) from None
    if pence <= 0:
        raise OBError(400, "UK.OBIE.Field.Invalid", "amount must be more than zero", path)
    creditor = _field(initiation, "CreditorAccount", "Data.Initiation.CreditorAccount", dict)
    for name in ("SchemeName", "Identification", "Name"):
        _field(creditor, name, f"Data.Initiation.CreditorAccount.{name}", str)
    debtor = initiation.get("DebtorAccount")
    if debtor is not None and not isinstance(debtor, dict):
        raise OBError(400, "UK.OBIE.Field.Invalid", "DebtorAccount must be an object", "Data.Initiation.DebtorAccount")
    return consent_id, initiation


def create_payments_app(bank: Bank) -> Starlette:
    """Payments service: domestic payments that settle immediately against the ledger."""
    ledger = bank.ledger

    def document(request: Request, payment: Payment) -> dict:
        self_url = request.url_for("domestic-payment", payment_id=payment.payment_id)
        return {
            "Data": payment.to_ob(ledger.account(payment.debtor_account_id)),
            "Links": {"Self": str(self_url)},
            "Meta": {},
        }

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def create_payment(request: Request) -> Response:
        customer_id = _customer(request, bank)
        debtor_account_id = request.headers.get(DEBTOR_ACCOUNT_HEADER)
        if not debtor_account_id:
            raise OBError(400, "UK.OBIE.Header.Missing", f"{DEBTOR_ACCOUNT_HEADER} is required", DEBTOR_ACCOUNT_HEADER)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise OBError(400, "UK.OBIE.Resource.InvalidFormat", "body is not JSON") from None
        debtor = ledger.owned(customer_id, debtor_account_id)
        if debtor is None:
            raise OBError(400, "UK.OBIE.Header.Invalid", "debtor account not found", DEBTOR_ACCOUNT_HEADER)
        consent_id, initiation = _read_payment(body)
        payment = ledger.pay(debtor, consent_id, initiation)
        return JSONResponse(document(request, payment), status_code=201)

    async def get_payment(request: Request) -> Response:
        payment = ledger.payment(_customer(request, bank), request.path_params["payment_id"])
        if payment is None:
            raise OBError(404, "UK.OBIE.Resource.NotFound", "domestic payment not found", "DomesticPaymentId")
        return JSONResponse(document(request, payment))

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route(f"{PISP}/domestic-payments", create_payment, methods=["POST"]),
            Route(f"{PISP}/domestic-payments/{{payment_id}}", get_payment, name="domestic-payment"),
        ],
        exception_handlers=_HANDLERS,
    )
