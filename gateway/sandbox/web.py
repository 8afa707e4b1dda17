"""What the sandbox bank's services share over HTTP: OB error answers, the customer, consent and account headers, query
parameters, request bodies, paged list answers and content negotiation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.sandbox.data import Bank
from gateway.sandbox.ledger import Account, Rejected, parse_money

CUSTOMER_HEADER = "x-bank-customer-id"
CONSENT_HEADER = "x-bank-consent-id"  # the consent of the TPP's access token: what its payment reads are scoped to
DEBTOR_ACCOUNT_HEADER = "x-bank-debtor-account-id"
PAGE_SIZE = 100  # records per page of every list answer

_AMOUNT = re.compile(r"^\d{1,13}$|^\d{1,13}\.\d{1,5}$")
# An unencoded "+" in a query string arrives as a space: "...T10:00:00 01:00" means "+01:00".
_SPACED_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
_PAGE = re.compile(r"[1-9][0-9]{0,8}")


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


HANDLERS = {OBError: _on_ob_error, Rejected: _on_rejected, HTTPException: _on_http_error}


def customer(request: Request, bank: Bank) -> str:
    customer_id = request.headers.get(CUSTOMER_HEADER)
    if not customer_id:
        raise OBError(403, "UK.OBIE.Header.Missing", f"{CUSTOMER_HEADER} is required", CUSTOMER_HEADER)
    if customer_id not in bank.customers:
        raise OBError(403, "UK.OBIE.Header.Invalid", "unknown customer", CUSTOMER_HEADER)
    return customer_id


def owned_account(request: Request, bank: Bank) -> Account:
    """The path's account, if it is the customer's."""
    account = bank.ledger.owned(customer(request, bank), request.path_params["account_id"])
    if account is None:
        raise OBError(404, "UK.OBIE.Resource.NotFound", "account not found", "AccountId")
    return account


def debtor_account(request: Request, bank: Bank) -> Account:
    """The account named in the debtor header, if it is the customer's: what a payment or a funds check is for."""
    customer_id = customer(request, bank)
    account_id = request.headers.get(DEBTOR_ACCOUNT_HEADER)
    if not account_id:
        raise OBError(400, "UK.OBIE.Header.Missing", f"{DEBTOR_ACCOUNT_HEADER} is required", DEBTOR_ACCOUNT_HEADER)
    account = bank.ledger.owned(customer_id, account_id)
    if account is None:
        raise OBError(400, "UK.OBIE.Header.Invalid", "debtor account not found", DEBTOR_ACCOUNT_HEADER)
    return account


def selected_accounts(request: Request, bank: Bank) -> list[Account]:
    """The customer's accounts, narrowed to the comma-separated `account_ids` query parameter if there is one."""
    owned = bank.ledger.accounts_of(customer(request, bank))
    wanted = request.query_params.get("account_ids")
    if wanted:
        ids = set(wanted.split(","))
        owned = [account for account in owned if account.account_id in ids]
    return owned


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


def window(request: Request, subject: str) -> tuple[datetime | None, datetime | None]:
    """The from<subject>DateTime..to<subject>DateTime query parameters (Booking, Statement); either may be absent."""
    names = f"from{subject}DateTime", f"to{subject}DateTime"
    since, until = _query_time(request, names[0]), _query_time(request, names[1])
    if since and until and since > until:
        raise OBError(400, "UK.OBIE.Field.InvalidDate", f"{names[0]} is after {names[1]}", names[0])
    return since, until


def document(request: Request, data: dict, meta: dict | None = None) -> dict:
    return {"Data": data, "Links": {"Self": str(request.url)}, "Meta": meta or {"TotalPages": 1}}


def listing(request: Request, name: str, records: list[dict], page_size: int, meta: dict | None = None) -> dict:
    """A list answer: the `page` query parameter's page (1 by default) of `records` as Data[name], with Links to
    the first, previous, next and last pages when there are several (each the request's URL with its `page` set).
    """
    pages = max(1, -(-len(records) // page_size))
    raw = request.query_params.get("page", "1")
    if not _PAGE.fullmatch(raw) or int(raw) > pages:
        raise OBError(400, "UK.OBIE.Field.Invalid", f"page must be a whole number from 1 to {pages}", "page")
    number = int(raw)
    links = {"Self": str(request.url)}
    if pages > 1:
        def link(to: int) -> str:
            return str(request.url.include_query_params(page=to))

        links["First"] = link(1)
        if number > 1:
            links["Prev"] = link(number - 1)
        if number < pages:
            links["Next"] = link(number + 1)
        links["Last"] = link(pages)
    first = (number - 1) * page_size
    page = records[first:first + page_size]
    return {"Data": {name: page}, "Links": links, "Meta": {"TotalPages": pages} | (meta or {})}


def json_object(raw: bytes) -> dict:
    """A request body, which must be a JSON object."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise OBError(400, "UK.OBIE.Resource.InvalidFormat", "body is not JSON") from None
    if not isinstance(value, dict):
        raise OBError(400, "UK.OBIE.Resource.InvalidFormat", "body must be a JSON object")
    return value


def field(container: dict, name: str, path: str, kind: type) -> Any:
    value = container.get(name)
    if value is None:
        raise OBError(400, "UK.OBIE.Field.Missing", f"{path} is required", path)
    if not isinstance(value, kind) or not value:
        raise OBError(400, "UK.OBIE.Field.Invalid", f"{path} must be a non-empty {kind.__name__}", path)
    return value


def instructed_amount(container: dict, path: str, name: str = "InstructedAmount") -> tuple[int, str]:
    """(pence, currency) of the OB amount object `container[name]` (at `path`); more than zero, at most 2 decimals."""
    amount = field(container, name, path, dict)
    value = field(amount, "Amount", f"{path}.Amount", str)
    currency = field(amount, "Currency", f"{path}.Currency", str)
    if not _AMOUNT.match(value):
        raise OBError(400, "UK.OBIE.Field.Invalid", "amount is not an OB amount string", f"{path}.Amount")
    try:
        pence = parse_money(value)
    except ValueError as exc:
        raise OBError(400, "UK.OBIE.Field.Invalid", str(exc), f"{path}.Amount") from None
    if pence <= 0:
        raise OBError(400, "UK.OBIE.Field.Invalid", "amount must be more than zero", f"{path}.Amount")
    return pence, currency


def date_time(container: dict, name: str, path: str) -> datetime:
    """The ISO 8601 date-time `container[name]`, which must name its zone."""
    raw = field(container, name, path, str)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise OBError(400, "UK.OBIE.Field.InvalidDate", f"{path} is not an ISO 8601 date-time with a zone", path)
    return value


def _quality(media_range: str) -> tuple[str, float]:
    """("type/subtype", q) of one element of an Accept header; q is 0 if it cannot be read."""
    kind, *parameters = (part.strip() for part in media_range.split(";"))
    quality = 1.0
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
    return kind.lower(), quality


def accepts(header: str | None, media_type: str) -> bool:
    """Whether an Accept header allows `media_type`: its most specific matching range decides (RFC 9110 12.5.1)."""
    if header is None or not header.strip():
        return True
    main = media_type.split("/")[0]
    specificity = {media_type: 3, f"{main}/*": 2, "*/*": 1}
    ranked = [
        (specificity[kind], quality)
        for kind, quality in map(_quality, header.split(","))
        if kind in specificity
    ]
    return bool(ranked) and max(ranked)[1] > 0
