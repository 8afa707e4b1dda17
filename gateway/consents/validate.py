"""The UK Open Banking v3.1.11 rules for a new consent, each above its check: account access (OBReadConsent1),
domestic payments (OBWriteDomesticConsent4) and funds confirmation (OBFundsConfirmationConsent1).

Every failure is a Refusal naming the field (OBError1.Path), so the TPP sees exactly what to fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from gateway.errors import Refusal
from gateway.policy.compile import permission_codes
from gateway.specs import first_problem

TRANSACTION_CONTENT = {"ReadTransactionsBasic", "ReadTransactionsDetail"}
TRANSACTION_DIRECTION = {"ReadTransactionsCredits", "ReadTransactionsDebits"}


@dataclass(frozen=True)
class AccountAccessRequest:
    permissions: tuple[str, ...]
    expires: str | None
    transaction_from: str | None
    transaction_to: str | None


def _date(data: dict, name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    path = f"Data.{name}"
    if not isinstance(value, str):
        raise Refusal("consent.invalid_date", f"{path} must be an ISO 8601 date-time.", path=path)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Refusal("consent.invalid_date", f"{path} is not an ISO 8601 date-time.", path=path) from None
    # UK OB "Common Payload Structure": date-times carry their time zone.
    if moment.tzinfo is None:
        raise Refusal("consent.invalid_date", f"{path} must include a time zone.", path=path)
    return moment.isoformat()


def _expiry(data: dict) -> str | None:
    """Data.ExpirationDateTime, which must be in the future; None: open-ended."""
    expires = _date(data, "ExpirationDateTime")
    if expires is not None and datetime.fromisoformat(expires) <= datetime.now(timezone.utc):
        raise Refusal("consent.invalid_date", "Data.ExpirationDateTime must be in the future.",
                      path="Data.ExpirationDateTime")
    return expires


def account_access(body: object) -> AccountAccessRequest:
    if not isinstance(body, dict):
        raise Refusal("request.invalid_json")
    data = body.get("Data")
    if not isinstance(data, dict):
        raise Refusal("consent.field_missing", "Data is required.", path="Data")
    # OBRisk2 is required in OBReadConsent1 (it may be empty).
    if not isinstance(body.get("Risk"), dict):
        raise Refusal("consent.field_missing", "Risk is required (it may be an empty object).", path="Risk")
    permissions = data.get("Permissions")
    if not isinstance(permissions, list) or not permissions or not all(isinstance(p, str) for p in permissions):
        raise Refusal("consent.field_missing", "Data.Permissions must list at least one permission.",
                      path="Data.Permissions")
    unknown = [p for p in permissions if p not in permission_codes()]
    if unknown:
        raise Refusal("consent.field_invalid", f"Unknown permission {unknown[0]!r}.", path="Data.Permissions")
    if len(set(permissions)) != len(permissions):
        raise Refusal("consent.field_invalid", "A permission is listed twice.", path="Data.Permissions")
    given = set(permissions)
    # AIS profile, "Permissions": a consent must allow ReadAccountsBasic or ReadAccountsDetail.
    if not given & {"ReadAccountsBasic", "ReadAccountsDetail"}:
        raise Refusal("consent.field_invalid", "Permissions must include ReadAccountsBasic or ReadAccountsDetail.",
                      path="Data.Permissions")
    # "Permissions must also include at least one of ReadTransactionsCredits / ReadTransactionsDebits" - and the
    # direction permissions "must also include one of ReadTransactionsBasic / ReadTransactionsDetail".
    if bool(given & TRANSACTION_CONTENT) != bool(given & TRANSACTION_DIRECTION):
        raise Refusal("consent.field_invalid", "ReadTransactionsBasic/Detail and ReadTransactionsCredits/Debits "
                      "must be asked for together.", path="Data.Permissions")
    expires = _expiry(data)
    since, until = _date(data, "TransactionFromDateTime"), _date(data, "TransactionToDateTime")
    if since and until and datetime.fromisoformat(since) > datetime.fromisoformat(until):
        raise Refusal("consent.invalid_date", "Data.TransactionFromDateTime is after TransactionToDateTime.",
                      path="Data.TransactionFromDateTime")
    return AccountAccessRequest(tuple(permissions), expires, since, until)


@dataclass(frozen=True)
class DomesticPaymentRequest:
    initiation: dict
    risk: dict


# What this bank's domestic payments support (the sandbox's, UK Faster Payments): pounds to a sort code and number.
DOMESTIC_CURRENCY = "GBP"
DOMESTIC_SCHEMES = ("UK.OBIE.SortCodeAccountNumber",)


def domestic_payment(body: object, schema: str = "OBWriteDomesticConsent4") -> DomesticPaymentRequest:
    """A payment consent (OBWriteDomesticConsent4) or, with schema OBWriteDomestic2, the payment itself."""
    if not isinstance(body, dict):
        raise Refusal("request.invalid_json")
    try:
        orjson.dumps(body)  # what the consent comparison hashes must be representable (orjson nests at most 255)
    except orjson.JSONEncodeError:
        raise Refusal("consent.field_invalid", "The body is nested too deeply.", path="Data") from None
    # The schema first: required fields, patterns (ActiveOrHistoricCurrencyAndAmount), lengths, no extra keys.
    problem = first_problem(body, schema)
    if problem is not None:
        path, message, missing = problem
        raise Refusal("consent.field_missing" if missing else "consent.field_invalid", message, path=path)
    initiation = body["Data"]["Initiation"]
    amount = initiation["InstructedAmount"]
    # Payment Initiation API, InstructedAmount: a positive amount.
    if float(amount["Amount"]) <= 0:
        raise Refusal("consent.field_invalid", "The amount must be more than zero.",
                      path="Data.Initiation.InstructedAmount.Amount")
    # Domestic payments: "a single domestic payment" moves pounds sterling between UK accounts.
    if amount["Currency"] != DOMESTIC_CURRENCY:
        raise Refusal("payment.currency_unsupported", f"Domestic payments are in {DOMESTIC_CURRENCY}.",
                      path="Data.Initiation.InstructedAmount.Currency")
    if initiation["CreditorAccount"]["SchemeName"] not in DOMESTIC_SCHEMES:
        raise Refusal("payment.scheme_unsupported", f"The creditor account must be a {DOMESTIC_SCHEMES[0]}.",
                      path="Data.Initiation.CreditorAccount.SchemeName")
    return DomesticPaymentRequest(initiation, body["Risk"])


@dataclass(frozen=True)
class FundsConfirmationRequest:
    expires: str | None
    debtor_account: dict


def funds_confirmation(body: object) -> FundsConfirmationRequest:
    """A funds-confirmation consent (OBFundsConfirmationConsent1): the schema itself, then a future expiry.

    Whether the DebtorAccount is the customer's is for the customer's authorisation to show (the bank knows)."""
    if not isinstance(body, dict):
        raise Refusal("request.invalid_json")
    problem = first_problem(body, "OBFundsConfirmationConsent1", "cbpii")
    if problem is not None:
        path, message, missing = problem
        raise Refusal("consent.field_missing" if missing else "consent.field_invalid", message, path=path)
    data = body["Data"]
    expires = _expiry(data)
    return FundsConfirmationRequest(expires, data["DebtorAccount"])
