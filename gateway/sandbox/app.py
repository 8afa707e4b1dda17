"""The sandbox bank's two HTTP services: accounts (login, AISP reads and CBPII funds checks) and payments (PISP, VRP).

They speak UK Open Banking v3.1.11 shapes over plain HTTP and trust their one caller, the gateway, to
have authenticated the customer and checked consent: the customer a call is for is named in the
`x-bank-customer-id` header, the account a payment or funds check is for in `x-bank-debtor-account-id`, and the
consent of the TPP's access token (when the call is bound to one) in `x-bank-consent-id`.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox import auth, consent_funds, files, funds, payments, resources, status_changes, vrp
from gateway.sandbox.data import Bank
from gateway.sandbox.web import HANDLERS, PAGE_SIZE, JSONResponse


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_accounts_app(bank: Bank, page_size: int = PAGE_SIZE) -> Starlette:
    """Accounts service: login check for the gateway's consent page, AISP reads (lists paged `page_size` records
    at a time) and CBPII funds confirmations."""

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

    return Starlette(
        routes=[
            Route("/healthz", _healthz),
            Route("/internal/authenticate", authenticate, methods=["POST"]),
            *auth.routes(bank.codes),
            *resources.routes(bank, page_size),
            *funds.routes(bank),
        ],
        exception_handlers=HANDLERS,
    )


def create_payments_app(bank: Bank) -> Starlette:
    """Payments service: every kind of UK OB payment (`payments`), file payments (`files`) and domestic VRP payments
    (`vrp`), paid from and booked on the bank's ledger, funds checks on their consents (`consent_funds`), and the
    feed of their status changes the gateway reads (`status_changes`)."""
    return Starlette(
        routes=[Route("/healthz", _healthz), *payments.routes(bank), *files.routes(bank), *vrp.routes(bank),
                *consent_funds.routes(bank),
                *status_changes.routes(bank.orders.changes, bank.ledger.catch_up, bank.ledger.lock)],
        exception_handlers=HANDLERS,
    )
