"""The payments service's file payments (UK OB v3.1.11): a file of domestic payments made under one consent.

The TPP uploads the file to its consent at the gateway (POST /file-payment-consents/{ConsentId}/file), so the gateway
passes it on with the payment: the body the bank reads is the TPP's OBWriteFile2 with one more top-level member,
"File", the file's bytes exactly as uploaded, in base64. This bank reads FileType UK.OBIE.PaymentInitiation.3.1, a
JSON file whose Data.DomesticPayments is an array of domestic payment initiations; it checks the bytes against the
Initiation's FileHash (base64 of their SHA-256) and the payments against NumberOfTransactions and ControlSum, then
pays each as a domestic payment, at once or on the file's RequestedExecutionDateTime (the funds must cover the file).

POST /pisp/file-payments answers 201 OBWriteFileResponse3; GET .../{FilePaymentId} reads it back, .../payment-details
gives its history and .../report-file a JSON report of each payment in the file: its status and its transaction.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from decimal import Decimal

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox.data import Bank
from gateway.sandbox.orders import FILE_PAYMENT, Order
from gateway.sandbox.payments import PISP, account_shapes, details, found, request_of
from gateway.sandbox.web import (
    JSONResponse,
    OBError,
    date_time,
    debtor_account,
    field,
    instructed_amount,
    json_object,
)

FILE_TYPE = "UK.OBIE.PaymentInitiation.3.1"
_ID = "FilePaymentId"
_INITIATION = "Data.Initiation"
_PAYMENTS = "File.Data.DomesticPayments"


def _invalid(message: str, path: str) -> OBError:
    return OBError(400, "UK.OBIE.Field.Invalid", message, path)


def _file(body: dict, initiation: dict) -> dict:
    """The file the gateway passed on, read, once it is the one the Initiation describes."""
    try:
        content = base64.b64decode(field(body, "File", "File", str), validate=True)
    except binascii.Error:
        raise OBError(400, "UK.OBIE.Resource.InvalidFormat", "File is the file's bytes in base64", "File") from None
    digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
    if digest != field(initiation, "FileHash", f"{_INITIATION}.FileHash", str):
        raise _invalid("the file does not match its FileHash", f"{_INITIATION}.FileHash")
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise OBError(400, "UK.OBIE.Resource.InvalidFormat", f"a {FILE_TYPE} file is JSON", "File") from None
    payments = field(field(document if isinstance(document, dict) else {}, "Data", "File.Data", dict),
                     "DomesticPayments", _PAYMENTS, list)
    total = Decimal(0)
    for index, payment in enumerate(payments):
        path = f"{_PAYMENTS}.{index}"
        if not isinstance(payment, dict):
            raise _invalid("each payment is an object", path)
        for name in ("InstructionIdentification", "EndToEndIdentification"):
            field(payment, name, f"{path}.{name}", str)
        instructed_amount(payment, f"{path}.InstructedAmount")
        account_shapes(payment, path)
        total += Decimal(payment["InstructedAmount"]["Amount"])
    count = initiation.get("NumberOfTransactions")
    if count is not None and count != str(len(payments)):
        raise _invalid(f"the file holds {len(payments)} payments", f"{_INITIATION}.NumberOfTransactions")
    control = initiation.get("ControlSum")
    if control is not None and (isinstance(control, bool) or not isinstance(control, int | float)
                                or Decimal(str(control)) != total):
        raise _invalid(f"the file's payments add up to {total}", f"{_INITIATION}.ControlSum")
    return document


def read(body: dict) -> dict:
    """The request of a file payment, with its file, once what the bank relies on is there, well formed and agrees."""
    data = field(body, "Data", "Data", dict)
    field(data, "ConsentId", "Data.ConsentId", str)
    initiation = field(data, "Initiation", _INITIATION, dict)
    if field(initiation, "FileType", f"{_INITIATION}.FileType", str) != FILE_TYPE:
        raise _invalid(f"this bank reads {FILE_TYPE} files", f"{_INITIATION}.FileType")
    if "RequestedExecutionDateTime" in initiation:
        date_time(initiation, "RequestedExecutionDateTime", f"{_INITIATION}.RequestedExecutionDateTime")
    debtor = initiation.get("DebtorAccount")
    if debtor is not None and not isinstance(debtor, dict):
        raise _invalid("DebtorAccount must be an object", f"{_INITIATION}.DebtorAccount")
    return request_of(body, data) | {"File": _file(body, initiation)}


def report(order: Order) -> dict:
    """Data of the report file: the file payment's status and each payment in the file, with its own."""
    done = {execution.number: execution for execution in order.executions}
    payments = []
    for number, line in enumerate(order.lines(), 1):
        entry = {name: line[name] for name in ("InstructionIdentification", "EndToEndIdentification",
                                               "InstructedAmount", "CreditorAccount")}
        execution = done.get(number)
        if execution is None:
            entry["Status"] = "Pending"
        else:
            entry |= {"Status": "AcceptedSettlementCompleted" if execution.booked else "Rejected",
                      "StatusUpdateDateTime": execution.at.isoformat()}
            if execution.debit_id is not None:
                entry["TransactionId"] = execution.debit_id
            else:
                entry["StatusReason"] = "Insufficient funds"
        payments.append(entry)
    return {_ID: order.order_id, "ConsentId": order.consent_id, "Status": order.status(),
            "NumberOfTransactions": str(len(payments)), "Payments": payments}


def routes(bank: Bank) -> list[Route]:
    def answer(request: Request, order: Order, status_code: int = 200) -> Response:
        data = {
            _ID: order.order_id,
            "ConsentId": order.consent_id,
            "CreationDateTime": order.created.isoformat(),
            "Status": order.status(),
            "StatusUpdateDateTime": order.status_time().isoformat(),
            "Initiation": order.initiation,
            "Debtor": bank.ledger.account(order.debtor_account_id).reference(),
        }
        self_url = request.url_for("file-payment", payment_id=order.order_id)
        return JSONResponse({"Data": data, "Links": {"Self": str(self_url)}, "Meta": {}}, status_code=status_code)

    async def create(request: Request) -> Response:
        debtor = debtor_account(request, bank)
        order = bank.orders.place(FILE_PAYMENT, debtor, read(json_object(await request.body())))
        return answer(request, order, 201)

    async def get(request: Request) -> Response:
        return answer(request, found(request, bank, FILE_PAYMENT, _ID))

    async def payment_details(request: Request) -> Response:
        return details(request, found(request, bank, FILE_PAYMENT, _ID))

    async def report_file(request: Request) -> Response:
        order = found(request, bank, FILE_PAYMENT, _ID)
        return JSONResponse({"Data": report(order), "Links": {"Self": str(request.url)}, "Meta": {}})

    base = f"{PISP}/file-payments"
    return [
        Route(base, create, methods=["POST"]),
        Route(f"{base}/{{payment_id}}", get, name="file-payment"),
        Route(f"{base}/{{payment_id}}/payment-details", payment_details),
        Route(f"{base}/{{payment_id}}/report-file", report_file),
    ]
