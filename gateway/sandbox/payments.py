"""The payments service's Payment Initiation API (UK OB v3.1.11): every kind of payment, read back, and its details.

Each kind has POST /pisp/{path} (201 and the kind's response), GET /pisp/{path}/{id} and GET .../{id}/payment-details
(OBWritePaymentDetailsResponse1), for the customer named in x-bank-customer-id, paying from the account named in
x-bank-debtor-account-id; a payment is read back under its own consent only (x-bank-consent-id, when the gateway
names one: see `found`, which file and VRP payments are read through too). What is checked here is the request's
shape, as far as the bank relies on it (the gateway has checked it against its schema and its consent); the bank's
own rules, the funds and the paying are `orders`'.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox import fx
from gateway.sandbox.data import Bank
from gateway.sandbox.orders import IMMEDIATE, KINDS, SCHEDULED, STANDING, Kind, Order
from gateway.sandbox.web import (
    CONSENT_HEADER,
    JSONResponse,
    OBError,
    customer,
    date_time,
    debtor_account,
    field,
    instructed_amount,
    json_object,
)

PISP = "/open-banking/v3.1/pisp"
_INITIATION = "Data.Initiation"


@dataclass(frozen=True)
class Resource:
    kind: Kind
    path: str  # under PISP
    id_field: str  # of the payment's id in its answer


RESOURCES = tuple(Resource(KINDS[kind], path, id_field) for kind, path, id_field in (
    ("domestic-payment", "domestic-payments", "DomesticPaymentId"),
    ("domestic-scheduled-payment", "domestic-scheduled-payments", "DomesticScheduledPaymentId"),
    ("domestic-standing-order", "domestic-standing-orders", "DomesticStandingOrderId"),
    ("international-payment", "international-payments", "InternationalPaymentId"),
    ("international-scheduled-payment", "international-scheduled-payments", "InternationalScheduledPaymentId"),
    ("international-standing-order", "international-standing-orders", "InternationalStandingOrderId"),
))


def account_shapes(container: dict, path: str) -> None:
    """The CreditorAccount (required) and DebtorAccount (optional) of an Initiation or VRP Instruction at `path`."""
    creditor = field(container, "CreditorAccount", f"{path}.CreditorAccount", dict)
    for name in ("SchemeName", "Identification", "Name"):
        field(creditor, name, f"{path}.CreditorAccount.{name}", str)
    debtor = container.get("DebtorAccount")
    if debtor is not None and not isinstance(debtor, dict):
        raise OBError(400, "UK.OBIE.Field.Invalid", "DebtorAccount must be an object", f"{path}.DebtorAccount")


def request_of(body: dict, data: dict) -> dict:
    """What the bank keeps of a request: its Data, and its Risk (which some answers repeat)."""
    risk = body.get("Risk")
    return {"Data": data, "Risk": risk if isinstance(risk, dict) else {}}


def read(kind: Kind, body: dict) -> dict:
    """The request of a payment of `kind`, once what the bank relies on is there and well formed."""
    data = field(body, "Data", "Data", dict)
    field(data, "ConsentId", "Data.ConsentId", str)
    initiation = field(data, "Initiation", _INITIATION, dict)
    account_shapes(initiation, _INITIATION)
    if kind.timing == STANDING:
        field(initiation, "Frequency", f"{_INITIATION}.Frequency", str)
        for name in ("FirstPaymentDateTime", "RecurringPaymentDateTime", "FinalPaymentDateTime"):
            if name == "FirstPaymentDateTime" or name in initiation:
                date_time(initiation, name, f"{_INITIATION}.{name}")
        if "NumberOfPayments" in initiation:
            field(initiation, "NumberOfPayments", f"{_INITIATION}.NumberOfPayments", str)
        amounts = ["InstructedAmount"] if kind.international else [
            name for name in ("FirstPaymentAmount", "RecurringPaymentAmount", "FinalPaymentAmount")
            if name == "FirstPaymentAmount" or name in initiation]
    else:
        ids = ["InstructionIdentification"]
        if kind.timing == IMMEDIATE or "EndToEndIdentification" in initiation:  # a scheduled payment's is optional
            ids.append("EndToEndIdentification")
        for name in ids:
            field(initiation, name, f"{_INITIATION}.{name}", str)
        if kind.timing == SCHEDULED:
            date_time(initiation, "RequestedExecutionDateTime", f"{_INITIATION}.RequestedExecutionDateTime")
        amounts = ["InstructedAmount"]
    for name in amounts:
        instructed_amount(initiation, f"{_INITIATION}.{name}", name)
    if kind.international:
        field(initiation, "CurrencyOfTransfer", f"{_INITIATION}.CurrencyOfTransfer", str)
        for name, kind_of in (("ExchangeRateInformation", dict), ("ChargeBearer", str)):
            if name in initiation:
                field(initiation, name, f"{_INITIATION}.{name}", kind_of)
    return request_of(body, data)


def found(request: Request, bank: Bank, kind: Kind, id_field: str) -> Order:
    """The path's payment of `kind`, if it is the customer's and made under the consent in x-bank-consent-id (when
    the gateway names one): a token for one consent reads none of the customer's payments under another."""
    order = bank.orders.find(customer(request, bank), kind, request.path_params["payment_id"])
    consent_id = request.headers.get(CONSENT_HEADER)
    if order is None or (consent_id is not None and consent_id != order.consent_id):
        raise OBError(404, "UK.OBIE.Resource.NotFound", "payment not found", id_field)
    return order


def details(request: Request, order: Order) -> Response:
    """The payment's status history (OBWritePaymentDetailsResponse1, and OBDomesticVRPDetails alike)."""
    return JSONResponse({"Data": {"PaymentStatus": order.payment_status()}, "Links": {"Self": str(request.url)},
                         "Meta": {}})


def _data(resource: Resource, order: Order, bank: Bank) -> dict:
    """Data of the kind's payment response (OBWriteDomesticResponse5, ...Scheduled..5, ...StandingOrder..6, ...)."""
    data: dict = {
        resource.id_field: order.order_id,
        "ConsentId": order.consent_id,
        "CreationDateTime": order.created.isoformat(),
        "Status": order.status(),
        "StatusUpdateDateTime": order.status_time().isoformat(),
    }
    if order.kind.timing != STANDING:
        expected = next(order.instalments())[0].isoformat()
        data |= {"ExpectedExecutionDateTime": expected, "ExpectedSettlementDateTime": expected}
    if order.kind.international:
        data["Charges"] = fx.charges(order.initiation)
        if order.kind.timing != STANDING:
            data["ExchangeRateInformation"] = order.rate()
    debtor = bank.ledger.account(order.debtor_account_id)
    return data | {"Initiation": order.initiation, "Debtor": debtor.reference()}


def routes(bank: Bank) -> list[Route]:
    def endpoints(resource: Resource) -> list[Route]:
        kind, name = resource.kind, resource.path

        def answer(request: Request, order: Order, status_code: int = 200) -> Response:
            self_url = request.url_for(name, payment_id=order.order_id)
            body = {"Data": _data(resource, order, bank), "Links": {"Self": str(self_url)}, "Meta": {}}
            return JSONResponse(body, status_code=status_code)

        async def create(request: Request) -> Response:
            debtor = debtor_account(request, bank)
            order = bank.orders.place(kind, debtor, read(kind, json_object(await request.body())))
            return answer(request, order, 201)

        async def get(request: Request) -> Response:
            return answer(request, found(request, bank, kind, resource.id_field))

        async def payment_details(request: Request) -> Response:
            return details(request, found(request, bank, kind, resource.id_field))

        base = f"{PISP}/{resource.path}"
        return [
            Route(base, create, methods=["POST"]),
            Route(f"{base}/{{payment_id}}", get, name=name),
            Route(f"{base}/{{payment_id}}/payment-details", payment_details),
        ]

    return [route for resource in RESOURCES for route in endpoints(resource)]
