"""Confirmation of Funds (CBPII, UK OB v3.1.11): could the customer's account pay this much now?

Answered from the same figure /balances shows as InterimAvailable (booked balance plus any overdraft or card limit),
and nothing more: a yes or no, never the balance. Nothing is kept; each check gets a new id.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox.data import Bank
from gateway.sandbox.web import JSONResponse, OBError, debtor_account, field, instructed_amount, json_object

CBPII = "/open-banking/v3.1/cbpii"


def routes(bank: Bank) -> list[Route]:
    async def confirm(request: Request) -> Response:
        account = debtor_account(request, bank)
        data = field(json_object(await request.body()), "Data", "Data", dict)
        consent_id = field(data, "ConsentId", "Data.ConsentId", str)
        reference = field(data, "Reference", "Data.Reference", str)
        pence, currency = instructed_amount(data, "Data.InstructedAmount")
        if currency != account.currency:
            raise OBError(400, "UK.OBIE.Field.Invalid", f"account is held in {account.currency}",
                          "Data.InstructedAmount.Currency")
        answer = {
            "FundsConfirmationId": f"fc-{uuid.uuid4().hex}",
            "ConsentId": consent_id,
            "CreationDateTime": bank.ledger.now().isoformat(),
            "FundsAvailable": pence <= bank.ledger.available(account.account_id),
            "Reference": reference,
            "InstructedAmount": {"Amount": data["InstructedAmount"]["Amount"], "Currency": currency},
        }
        return JSONResponse({"Data": answer, "Links": {"Self": str(request.url)}, "Meta": {}}, status_code=201)

    return [Route(f"{CBPII}/funds-confirmations", confirm, methods=["POST"])]
