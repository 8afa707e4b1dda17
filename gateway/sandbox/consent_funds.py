"""The payments service's funds checks on payment and VRP consents (UK OB v3.1.11): could the consent be paid now?

GET /pisp/{domestic,international,international-scheduled}-payment-consents/{ConsentId}/funds-confirmation answers
OBWriteFundsConfirmationResponse1 for the amount the gateway passes on from the consent in x-bank-instructed-amount
("<Amount> <Currency>", its Initiation.InstructedAmount); POST /pisp/domestic-vrp-consents/{ConsentId}/
funds-confirmation answers 201 OBVRPFundsConfirmationResponse for the amount in its body. Both are paid from the
account in x-bank-debtor-account-id, and answer by CBPII's rule (`funds`); nothing is kept.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox import fx
from gateway.sandbox.data import Bank
from gateway.sandbox.funds import confirmation, covers, held_in
from gateway.sandbox.ledger import Account
from gateway.sandbox.payments import PISP
from gateway.sandbox.web import JSONResponse, OBError, debtor_account, field, instructed_amount, json_object

AMOUNT_HEADER = "x-bank-instructed-amount"
_CURRENCY = re.compile(r"[A-Z]{3}")


def _invalid_amount(message: str) -> OBError:
    return OBError(400, "UK.OBIE.Field.Invalid", f'{AMOUNT_HEADER} is "<Amount> <Currency>": {message}', AMOUNT_HEADER)


def header_amount(request: Request) -> tuple[int, dict]:
    """(pence, OB amount) of the consent's InstructedAmount, as the gateway passes it on in AMOUNT_HEADER."""
    raw = request.headers.get(AMOUNT_HEADER)
    if raw is None:
        raise OBError(400, "UK.OBIE.Field.Missing", f"{AMOUNT_HEADER} is required", AMOUNT_HEADER)
    value, _, currency = raw.partition(" ")
    amount = {"Amount": value, "Currency": currency}
    try:
        pence, _ = instructed_amount({"InstructedAmount": amount}, AMOUNT_HEADER)
    except OBError as exc:
        raise _invalid_amount(exc.message) from None
    if not _CURRENCY.fullmatch(currency):
        raise _invalid_amount("the currency is three capital letters")
    return pence, amount


def international_debit(bank: Bank, account: Account, pence: int, amount: dict) -> int:
    """Pence an international payment of `amount` would debit from the account now: the amount at the bank's rate,
    and the bank's fee. The bank sees the amount only, so it takes the fee as the debtor's (the default ChargeBearer)
    and, for an amount in pounds (whatever the currency of transfer), the highest it charges: short of an Agreed
    rate, a yes is then one the payment would not refuse for want of funds."""
    if account.currency != fx.HOME:
        raise OBError(400, "UK.OBIE.Unsupported.Currency", f"international payments are from {fx.HOME} accounts",
                      AMOUNT_HEADER)
    if amount["Currency"] == fx.HOME:
        return pence + max(fx.fee({"CurrencyOfTransfer": currency}) for currency in fx.RATES)
    if amount["Currency"] not in fx.RATES:
        raise OBError(400, "UK.OBIE.Unsupported.Currency", f"currencies of transfer: {', '.join(fx.RATES)}",
                      AMOUNT_HEADER)
    initiation = {"CurrencyOfTransfer": amount["Currency"]}
    return fx.cost(amount, fx.quote(initiation, bank.ledger.now())) + fx.fee(initiation)


def routes(bank: Bank) -> list[Route]:
    def payment_check(international: bool) -> Callable[[Request], Awaitable[Response]]:
        async def check(request: Request) -> Response:
            account = debtor_account(request, bank)
            pence, amount = header_amount(request)
            if international:
                pence = international_debit(bank, account, pence, amount)
            else:
                held_in(account, amount["Currency"], AMOUNT_HEADER)
            result = {"FundsAvailableDateTime": bank.ledger.now().isoformat(),
                      "FundsAvailable": covers(bank, account, pence)}
            return JSONResponse({"Data": {"FundsAvailableResult": result}, "Links": {"Self": str(request.url)},
                                 "Meta": {}})

        return check

    async def vrp_check(request: Request) -> Response:
        account = debtor_account(request, bank)
        data = field(json_object(await request.body()), "Data", "Data", dict)
        if field(data, "ConsentId", "Data.ConsentId", str) != request.path_params["consent_id"]:
            raise OBError(400, "UK.OBIE.Resource.ConsentMismatch", "Data.ConsentId is not the consent of the path",
                          "Data.ConsentId")
        answer, available = confirmation(bank, account, data)
        result = {"FundsAvailableDateTime": answer["CreationDateTime"],
                  "FundsAvailable": "Available" if available else "NotAvailable"}
        body = {"Data": answer | {"FundsAvailableResult": result}, "Links": {"Self": str(request.url)}, "Meta": {}}
        return JSONResponse(body, status_code=201)

    checks = {"domestic-payment-consents": False, "international-payment-consents": True,
              "international-scheduled-payment-consents": True}
    return [
        *(Route(f"{PISP}/{path}/{{consent_id}}/funds-confirmation", payment_check(international))
          for path, international in checks.items()),
        Route(f"{PISP}/domestic-vrp-consents/{{consent_id}}/funds-confirmation", vrp_check, methods=["POST"]),
    ]
