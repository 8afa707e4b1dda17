"""The payments service's domestic VRP payments (UK OB v3.1.11 VRP API): many payments under one consent.

POST /pisp/domestic-vrps pays at once from the account in x-bank-debtor-account-id (201 OBDomesticVRPResponse);
GET .../domestic-vrps/{DomesticVRPId} reads one back and .../payment-details gives its history (OBDomesticVRPDetails).
The gateway holds each payment to the consent's control parameters before the bank sees it; the bank only pays, the
funds allowing. A retry is known by its x-idempotency-key (the gateway forwards it hashed per TPP), not its consent.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox.data import Bank
from gateway.sandbox.orders import VRP, Order
from gateway.sandbox.payments import PISP, account_shapes, details, found, request_of
from gateway.sandbox.web import JSONResponse, OBError, debtor_account, field, instructed_amount, json_object

IDEMPOTENCY_HEADER = "x-idempotency-key"
_ID = "DomesticVRPId"


def read(body: dict) -> dict:
    """The request of a VRP payment (OBDomesticVRPRequest), once what the bank relies on is there and well formed."""
    data = field(body, "Data", "Data", dict)
    field(data, "ConsentId", "Data.ConsentId", str)
    initiation = data.get("Initiation")
    if not isinstance(initiation, dict):  # its fields are all optional: {} will do
        raise OBError(400, "UK.OBIE.Field.Missing" if initiation is None else "UK.OBIE.Field.Invalid",
                      "Data.Initiation must be an object", "Data.Initiation")
    if "DebtorAccount" in initiation:
        field(initiation, "DebtorAccount", "Data.Initiation.DebtorAccount", dict)
    instruction = field(data, "Instruction", "Data.Instruction", dict)
    for name in ("InstructionIdentification", "EndToEndIdentification"):
        field(instruction, name, f"Data.Instruction.{name}", str)
    instructed_amount(instruction, "Data.Instruction.InstructedAmount")
    account_shapes(instruction, "Data.Instruction")
    return request_of(body, data)


def routes(bank: Bank) -> list[Route]:
    def answer(request: Request, order: Order, status_code: int = 200) -> Response:
        data = {
            _ID: order.order_id,
            "ConsentId": order.consent_id,
            "CreationDateTime": order.created.isoformat(),
            "Status": order.status(),
            "StatusUpdateDateTime": order.status_time().isoformat(),
            "ExpectedExecutionDateTime": order.created.isoformat(),
            "ExpectedSettlementDateTime": order.created.isoformat(),
            "Initiation": order.initiation,
            "Instruction": order.instruction,
            "DebtorAccount": bank.ledger.account(order.debtor_account_id).reference(),
        }
        self_url = request.url_for("domestic-vrp", payment_id=order.order_id)
        body = {"Data": data, "Risk": order.request["Risk"], "Links": {"Self": str(self_url)}, "Meta": {}}
        return JSONResponse(body, status_code=status_code)

    async def create(request: Request) -> Response:
        debtor = debtor_account(request, bank)
        payment = read(json_object(await request.body()))
        order = bank.orders.place(VRP, debtor, payment, request.headers.get(IDEMPOTENCY_HEADER) or None)
        return answer(request, order, 201)

    async def get(request: Request) -> Response:
        return answer(request, found(request, bank, VRP, _ID))

    async def payment_details(request: Request) -> Response:
        return details(request, found(request, bank, VRP, _ID))

    base = f"{PISP}/domestic-vrps"
    return [
        Route(base, create, methods=["POST"]),
        Route(f"{base}/{{payment_id}}", get, name="domestic-vrp"),
        Route(f"{base}/{{payment_id}}/payment-details", payment_details),
    ]
