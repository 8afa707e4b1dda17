"""Confirmation of Funds (CBPII, UK OB v3.1.11): could the customer's account pay this much now?

Answered from the same figure /balances shows as InterimAvailable (booked balance plus any overdraft or card limit),
and nothing more: a yes or no, never the balance. Nothing is kept; each check gets a new id. The payments service's
funds checks on payment and VRP consents (`consent_funds`) answer by the same rule.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox.data import Bank
from gateway.sandbox.ledger import Account
from gateway.sandbox.web import JSONResponse, OBError, debtor_account, field, instructed_amount, json_object

CBPII = "/open-banking/v3.1/cbpii"


def held_in(account: Account, currency: str, path: str) -> None:
    """OBError unless `currency` is the account's: an amount is checked as given, never converted."""
    if currency != account.currency:
        raise OBError(400, "UK.OBIE.Field.Invalid", f"account is held in {account.currency}", path)


def covers(bank: Bank, account: Account, pence: int) -> bool:
    """Whether the account could pay `pence` of its currency now."""
    return pence <= bank.ledger.available(account.account_id)


def confirmation(bank: Bank, account: Account, data: dict) -> tuple[dict, bool]:
    """A funds-confirmation request's Data (CBPII's OBFundsConfirmation1 or an OBVRPFundsConfirmationRequest),
    answered: the answer's Data, short of how it puts the result, and whether the funds are there."""
    consent_id = field(data, "ConsentId", "Data.ConsentId", str)
    pence, currency = instructed_amount(data, "Data.InstructedAmount")
    held_in(account, currency, "Data.InstructedAmount.Currency")
    answer = {
        "FundsConfirmationId": f"fc-{uuid.uuid4().hex}",
        "ConsentId": consent_id,
        "CreationDateTime": bank.ledger.now().isoformat(),
        "InstructedAmount": {"Amount": data["InstructedAmount"]["Amount"], "Currency": currency},
    }
    if "Reference" in data:
        answer["Reference"] = field(data, "Reference", "Data.Reference", str)
    return answer, covers(bank, account, pence)


def routes(bank: Bank) -> list[Route]:
    async def confirm(request: Request) -> Response:
        account = debtor_account(request, bank)
        data = field(json_object(await request.body()), "Data", "Data", dict)
        field(data, "Reference", "Data.Reference", str)  # optional for VRP, not here
        answer, available = confirmation(bank, account, data)
        body = {"Data": answer | {"FundsAvailable": available}, "Links": {"Self": str(request.url)}, "Meta": {}}
        return JSONResponse(body, status_code=201)

    return [Route(f"{CBPII}/funds-confirmations", confirm, methods=["POST"])]
