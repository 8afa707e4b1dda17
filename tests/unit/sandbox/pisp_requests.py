"""Requests to the sandbox bank's payments service, and reading their effect back through its accounts service.

Shared by the payment tests of this directory (imported by name: pytest puts this directory on sys.path).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

PISP = "/open-banking/v3.1/pisp"
AISP = "/open-banking/v3.1/aisp"
CREDITOR = {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "08080021325698", "Name": "ACME Ltd"}
ABROAD = {"SchemeName": "UK.OBIE.IBAN", "Identification": "DE89370400440532013000", "Name": "Müller GmbH"}


def headers(customer: str = "alice", debtor: str = "acc-alice-current") -> dict[str, str]:
    return {"x-bank-customer-id": customer, "x-bank-debtor-account-id": debtor}


def who(customer: str = "alice") -> dict[str, str]:
    return {"x-bank-customer-id": customer}


def stamp(moment: datetime) -> str:
    return moment.isoformat()


def amount(value: str, currency: str = "GBP") -> dict:
    return {"Amount": value, "Currency": currency}


def pence(money: dict) -> int:
    return int(Decimal(money["Amount"]) * 100)


def request(initiation: dict, consent_id: str = "c-1") -> dict:
    return {"Data": {"ConsentId": consent_id, "Initiation": initiation},
            "Risk": {"PaymentContextCode": "PartyToParty"}}


def domestic(value: str = "12.34", **more: object) -> dict:
    return {"InstructionIdentification": "instr-1", "EndToEndIdentification": "e2e-1",
            "InstructedAmount": amount(value), "CreditorAccount": CREDITOR,
            "RemittanceInformation": {"Reference": "INV-1"}} | more


def scheduled(when: datetime, value: str = "20.00", **more: object) -> dict:
    return {"InstructionIdentification": "instr-2", "RequestedExecutionDateTime": stamp(when),
            "InstructedAmount": amount(value), "CreditorAccount": CREDITOR,
            "RemittanceInformation": {"Reference": "DEPOSIT"}} | more


def standing_order(first: datetime, value: str = "25.00", frequency: str = "IntrvlMnthDay:01:01",
                   **more: object) -> dict:
    return {"Frequency": frequency, "Reference": "GYM", "FirstPaymentDateTime": stamp(first),
            "FirstPaymentAmount": amount(value), "CreditorAccount": CREDITOR} | more


def international(value: str = "100.00", currency: str = "EUR", rate: dict | None = None, **more: object) -> dict:
    initiation = {"InstructionIdentification": "instr-3", "EndToEndIdentification": "e2e-3",
                  "CurrencyOfTransfer": currency, "InstructedAmount": amount(value, currency),
                  "CreditorAccount": ABROAD, "RemittanceInformation": {"Reference": "INVOICE 77"}}
    if rate is not None:
        initiation["ExchangeRateInformation"] = {"UnitCurrency": "GBP"} | rate
    return initiation | more


def international_scheduled(when: datetime, value: str = "50.00", currency: str = "USD", **more: object) -> dict:
    initiation = international(value, currency, **more)
    del initiation["EndToEndIdentification"]
    return initiation | {"RequestedExecutionDateTime": stamp(when)}


def international_standing_order(first: datetime, value: str = "30.00", currency: str = "EUR",
                                 frequency: str = "IntrvlMnthDay:01:15", **more: object) -> dict:
    return {"Frequency": frequency, "Reference": "RENT ABROAD", "FirstPaymentDateTime": stamp(first),
            "CurrencyOfTransfer": currency, "InstructedAmount": amount(value, currency), "CreditorAccount": ABROAD
            } | more


def vrp(value: str = "5.00", consent_id: str = "vrp-1", **instruction: object) -> dict:
    return {
        "Data": {
            "ConsentId": consent_id,
            "PSUAuthenticationMethod": "UK.OBIE.SCANotRequired",
            "VRPType": "UK.OBIE.VRPType.Sweeping",
            "Initiation": {"CreditorAccount": CREDITOR},
            "Instruction": {"InstructionIdentification": "vrp-instr", "EndToEndIdentification": "vrp-e2e",
                            "InstructedAmount": amount(value), "CreditorAccount": CREDITOR,
                            "RemittanceInformation": {"Reference": "SWEEP"}} | instruction,
        },
        "Risk": {"PaymentContextCode": "TransferToSelf"},
    }


def payment_id(answer: dict) -> str:
    """The id of the payment an answer is about (DomesticPaymentId, InternationalStandingOrderId, ...)."""
    return next(value for key, value in answer["Data"].items() if key.endswith("Id") and key != "ConsentId")


def balance(accounts, account_id: str = "acc-alice-current", customer: str = "alice",
            kind: str = "InterimBooked") -> int:
    """Pence of the account's balance of `kind` as /balances answers it."""
    answer = accounts.get(f"{AISP}/accounts/{account_id}/balances", headers=who(customer)).json()
    found = next(b for b in answer["Data"]["Balance"] if b["Type"] == kind)
    return pence(found["Amount"]) * (1 if found["CreditDebitIndicator"] == "Credit" else -1)


def transactions(accounts, account_id: str = "acc-alice-current", customer: str = "alice") -> list[dict]:
    """The account's transactions, newest first (one page is enough for a test's few payments on top)."""
    path = f"{AISP}/accounts/{account_id}/transactions"
    return accounts.get(path, headers=who(customer)).json()["Data"]["Transaction"]


def records(accounts, resource: str, account_id: str = "acc-alice-current", customer: str = "alice") -> dict:
    """The account's answer for `resource` (scheduled-payments, standing-orders)."""
    return accounts.get(f"{AISP}/accounts/{account_id}/{resource}", headers=who(customer)).json()


def signed(transaction: dict) -> int:
    return pence(transaction["Amount"]) * (1 if transaction["CreditDebitIndicator"] == "Credit" else -1)
