"""The sandbox bank's two HTTP services: accounts (login, AISP reads and CBPII funds checks) and payments (PISP).

They speak UK Open Banking v3.1.11 shapes over plain HTTP and trust their one caller, the gateway, to
have authenticated the customer and checked consent: the customer a call is for is named in the
`x-bank-customer-id` header, and the account a payment or funds check is for in `x-bank-debtor-account-id`.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox import funds, resources
from gateway.sandbox.data import Bank
from gateway.sandbox.ledger import Payment
from gateway.sandbox.web import (
    HANDLERS,
    PAGE_SIZE,
    JSONResponse,
    OBError,
    customer,
    debtor_account,
    field,
    instructed_amount,
    json_object,
)

PISP = "/open-banking/v3.1/pisp"


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
            *resources.routes(bank, page_size),
            *funds.routes(bank),
        ],
        exception_handlers=HANDLERS,
    )


def _read_payment(body: dict) -> tuple[str, dict]:
    """(ConsentId, Initiation) from an OBWriteDomestic2 body, checking what the bank relies on."""
    data = field(body, "Data", "Data", dict)
    consent_id = field(data, "ConsentId", "Data.ConsentId", str)
    initiation = field(data, "Initiation", "Data.Initiation", dict)
    for name in ("InstructionIdentification", "EndToEndIdentification"):
        field(initiation, name, f"Data.Initiation.{name}", str)
    instructed_amount(initiation, "Data.Initiation.InstructedAmount")
    creditor = field(initiation, "CreditorAccount", "Data.Initiation.CreditorAccount", dict)
    for name in ("SchemeName", "Identification", "Name"):
        field(creditor, name, f"Data.Initiation.CreditorAccount.{name}", str)
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

    async def create_payment(request: Request) -> Response:
        debtor = debtor_account(request, bank)
        consent_id, initiation = _read_payment(json_object(await request.body()))
        payment = ledger.pay(debtor, consent_id, initiation)
        return JSONResponse(document(request, payment), status_code=201)

    async def get_payment(request: Request) -> Response:
        payment = ledger.payment(customer(request, bank), request.path_params["payment_id"])
        if payment is None:
            raise OBError(404, "UK.OBIE.Resource.NotFound", "domestic payment not found", "DomesticPaymentId")
        return JSONResponse(document(request, payment))

    return Starlette(
        routes=[
            Route("/healthz", _healthz),
            Route(f"{PISP}/domestic-payments", create_payment, methods=["POST"]),
            Route(f"{PISP}/domestic-payments/{{payment_id}}", get_payment, name="domestic-payment"),
        ],
        exception_handlers=HANDLERS,
    )
