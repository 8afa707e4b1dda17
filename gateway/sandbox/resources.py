"""The accounts service's AISP reads: every UK OB v3.1.11 Account and Transaction API resource.

Per-account routes answer for an account of the customer's (else 404); bulk routes for all the customer's accounts,
or those of them named in `account_ids`. Every list is paged (`web.listing`). Records are full and unmasked: cutting
them down to what a consent allows, and to the accounts it covers, is the gateway's job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.sandbox.data import Bank
from gateway.sandbox.ledger import Account, money, within
from gateway.sandbox.statements import Statement, statements
from gateway.sandbox.web import (
    JSONResponse,
    OBError,
    accepts,
    customer,
    document,
    listing,
    owned_account,
    selected_accounts,
    window,
)

AISP = "/open-banking/v3.1/aisp"

Records = Callable[[Request, Account], list[dict]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _balances(bank: Bank, account: Account) -> list[dict]:
    """InterimBooked from the books, and InterimAvailable including any overdraft or card limit."""
    moment = bank.ledger.balance_time(account.account_id).isoformat()

    def balance(kind: str, pence: int) -> dict:
        return {
            "AccountId": account.account_id,
            "CreditDebitIndicator": "Credit" if pence >= 0 else "Debit",
            "Type": kind,
            "DateTime": moment,
            "Amount": {"Amount": money(pence), "Currency": account.currency},
        }

    available = balance("InterimAvailable", bank.ledger.available(account.account_id))
    if account.credit_limit:
        available["CreditLine"] = [{
            "Included": True,
            "Type": "Credit" if account.sub_type == "CreditCard" else "Pre-Agreed",
            "Amount": {"Amount": money(account.credit_limit), "Currency": account.currency},
        }]
    return [balance("InterimBooked", bank.ledger.balance(account.account_id)), available]


def routes(bank: Bank, page_size: int) -> list[Route]:
    ledger = bank.ledger

    def per_account(name: str, records: Records) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return JSONResponse(listing(request, name, records(request, owned_account(request, bank)), page_size))

        return endpoint

    def bulk(name: str, records: Records) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            found = [record for account in selected_accounts(request, bank) for record in records(request, account)]
            return JSONResponse(listing(request, name, found, page_size))

        return endpoint

    def stored(name: str) -> Records:
        """The account's records of type `name` that the bank was built with, then those its payments made."""
        return lambda request, account: (bank.records[name].get(account.account_id, [])
                                         + bank.orders.records(name, account.account_id))

    def transactions(request: Request, accounts: list[Account], statement: Statement | None = None) -> Response:
        """The accounts' entries newest first, booked within the request's window (and the statement's period)."""
        since, until = window(request, "Booking")
        if statement is not None:
            since, until = max(since or statement.start, statement.start), min(until or statement.end, statement.end)
        currency = {account.account_id: account.currency for account in accounts}
        entries = [entry for account in accounts for entry in ledger.booked_between(account.account_id, since, until)]
        entries.sort(key=lambda entry: (entry.booked, entry.seq), reverse=True)
        histories = [history for account in accounts if (history := ledger.entries(account.account_id))]
        meta = {}
        if histories:
            meta = {"FirstAvailableDateTime": min(history[0].booked for history in histories).isoformat(),
                    "LastAvailableDateTime": max(history[-1].booked for history in histories).isoformat()}
        records = [entry.to_ob(currency[entry.account_id]) for entry in entries]
        return JSONResponse(listing(request, "Transaction", records, page_size, meta))

    async def account_transactions(request: Request) -> Response:
        return transactions(request, [owned_account(request, bank)])

    async def bulk_transactions(request: Request) -> Response:
        return transactions(request, selected_accounts(request, bank))

    def statement_records(request: Request, account: Account) -> list[dict]:
        """OBStatement2 records of the account's statements wholly within the fromStatementDateTime..to window."""
        since, until = window(request, "Statement")
        return [
            statement.to_ob(ledger) for statement in statements(account, bank.anchor)
            if within(statement.start, since, until) and within(statement.end, since, until)
        ]

    def statement(request: Request) -> Statement:
        account = owned_account(request, bank)
        for found in statements(account, bank.anchor):
            if found.statement_id == request.path_params["statement_id"]:
                return found
        raise OBError(404, "UK.OBIE.Resource.NotFound", "statement not found", "StatementId")

    async def one_statement(request: Request) -> Response:
        return JSONResponse(listing(request, "Statement", [statement(request).to_ob(ledger)], page_size))

    async def statement_transactions(request: Request) -> Response:
        found = statement(request)
        return transactions(request, [found.account], found)

    async def statement_file(request: Request) -> Response:
        found = statement(request)
        if not accepts(request.headers.get("accept"), "application/pdf"):
            raise OBError(406, "UK.OBIE.Header.Invalid", "statement files are application/pdf", "Accept")
        content = found.pdf(ledger, bank.customers[found.account.customer_id].display_name)
        disposition = f'attachment; filename="{found.filename}"'
        return Response(content, media_type="application/pdf", headers={"Content-Disposition": disposition})

    def holders(request: Request, account: Account) -> list[dict]:
        """OBParty2 of each of the account's holders, the customer first, related to the account."""
        others = bank.co_holders.get(account.account_id, [])
        link = {"Related": str(request.url_for("account", account_id=account.account_id)), "Id": account.account_id}
        kind = "Joint" if others else "Sole"
        roles = ["UK.OBIE.Principal"] + ["UK.OBIE.SecondaryOwner"] * len(others)
        return [
            party | {"PartyType": kind, "AccountRole": role, "Relationships": {"Account": link}}
            for party, role in zip([bank.parties[account.customer_id], *others], roles, strict=True)
        ]

    async def account_party(request: Request) -> Response:
        return JSONResponse(document(request, {"Party": holders(request, owned_account(request, bank))[0]}))

    async def own_party(request: Request) -> Response:
        return JSONResponse(document(request, {"Party": bank.parties[customer(request, bank)]}))

    def account_records(request: Request, account: Account) -> list[dict]:
        return [account.to_ob()]

    def balance_records(request: Request, account: Account) -> list[dict]:
        return _balances(bank, account)

    # (path under /accounts/{AccountId}, bulk path, OB Data array name, the records of one account)
    listed: list[tuple[str, str, str, Records]] = [
        ("balances", "balances", "Balance", balance_records),
        ("beneficiaries", "beneficiaries", "Beneficiary", stored("Beneficiary")),
        ("direct-debits", "direct-debits", "DirectDebit", stored("DirectDebit")),
        ("standing-orders", "standing-orders", "StandingOrder", stored("StandingOrder")),
        ("scheduled-payments", "scheduled-payments", "ScheduledPayment", stored("ScheduledPayment")),
        ("statements", "statements", "Statement", statement_records),
        ("product", "products", "Product", stored("Product")),
        ("offers", "offers", "Offer", stored("Offer")),
    ]
    one = f"{AISP}/accounts/{{account_id}}"
    return [
        Route(f"{AISP}/accounts", bulk("Account", account_records)),
        Route(one, per_account("Account", account_records), name="account"),
        *(Route(f"{one}/{path}", per_account(name, records)) for path, _, name, records in listed),
        *(Route(f"{AISP}/{path}", bulk(name, records)) for _, path, name, records in listed),
        Route(f"{one}/transactions", account_transactions),
        Route(f"{AISP}/transactions", bulk_transactions),
        Route(f"{one}/statements/{{statement_id}}", one_statement),
        Route(f"{one}/statements/{{statement_id}}/file", statement_file),
        Route(f"{one}/statements/{{statement_id}}/transactions", statement_transactions),
        Route(f"{one}/party", account_party),
        Route(f"{one}/parties", per_account("Party", holders)),
        Route(f"{AISP}/party", own_party),
    ]
