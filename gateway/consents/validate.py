"""The UK Open Banking v3.1.11 rules for a new consent, each above its check: account access (OBReadConsent1),
every payment kind (its consent schema, `payment_kinds.PAYMENT_KINDS`) and funds confirmation
(OBFundsConfirmationConsent1).

Every failure is a Refusal naming the field (OBError1.Path), so the TPP sees exactly what to fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from gateway.consents.control_parameters import InvalidControlParameters, parse_control_parameters
from gateway.consents.payment_kinds import (
    DOMESTIC_CURRENCY,
    DOMESTIC_SCHEMES,
    FILE_TYPES,
    TRANSFER_CURRENCIES,
    PaymentKind,
)
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
class PaymentConsentRequest:
    initiation: dict
    risk: dict
    terms: dict   # the whole Data as asked (the answer repeats it)


def payment_consent(kind: PaymentKind, body: object) -> PaymentConsentRequest:
    """A payment consent of `kind`: its v3.1.11 schema itself, then this bank's rules for the kind."""
    if not isinstance(body, dict):
        raise Refusal("request.invalid_json")
    try:
        orjson.dumps(body)  # what the consent comparison hashes must be representable (orjson nests at most 255)
    except orjson.JSONEncodeError:
        raise Refusal("consent.field_invalid", "The body is nested too deeply.", path="Data") from None
    # The schema first: required fields, patterns (ActiveOrHistoricCurrencyAndAmount), lengths, no extra keys.
    problem = first_problem(body, kind.consent_request, kind.api)
    if problem is not None:
        path, message, missing = problem
        raise Refusal("consent.field_missing" if missing else "consent.field_invalid", message, path=path)
    data = body["Data"]
    initiation = data["Initiation"]
    for name in ("InstructedAmount", "FirstPaymentAmount", "RecurringPaymentAmount", "FinalPaymentAmount"):
        if name in initiation:
            _amount(initiation[name], f"Data.Initiation.{name}", kind)
    if kind.international:
        if initiation["CurrencyOfTransfer"] not in TRANSFER_CURRENCIES:
            raise Refusal("payment.currency_unsupported", f"Currencies of transfer: {', '.join(TRANSFER_CURRENCIES)}.",
                          path="Data.Initiation.CurrencyOfTransfer")
    elif "CreditorAccount" in initiation and initiation["CreditorAccount"]["SchemeName"] not in DOMESTIC_SCHEMES:
        raise Refusal("payment.scheme_unsupported", f"The creditor account must be a {DOMESTIC_SCHEMES[0]}.",
                      path="Data.Initiation.CreditorAccount.SchemeName")
    # The first or only execution lies ahead (the schema says whether the kind requires the date).
    when = _date(initiation, kind.future_field) if kind.future_field is not None else None
    if when is not None and datetime.fromisoformat(when) <= datetime.now(timezone.utc):
        raise Refusal("consent.invalid_date", f"Data.Initiation.{kind.future_field} must be in the future.",
                      path=f"Data.Initiation.{kind.future_field}")
    if "ControlParameters" in data:
        _control_parameters(data["ControlParameters"], kind)
    if kind.file:
        _file_terms(initiation)
    return PaymentConsentRequest(initiation, body.get("Risk") or {}, data)


def _file_terms(initiation: dict) -> None:
    """A file this bank reads, described well enough for the customer to know what they authorise: how many payments
    and how much in all (optional in the schema, required here: the consent page states both)."""
    if initiation["FileType"] not in FILE_TYPES:
        raise Refusal("file.unsupported", f"File types: {', '.join(FILE_TYPES)}.", path="Data.Initiation.FileType")
    for name in ("NumberOfTransactions", "ControlSum"):
        if name not in initiation:
            raise Refusal("consent.field_missing", f"Data.Initiation.{name} is required by this bank.",
                          path=f"Data.Initiation.{name}")
    if int(initiation["NumberOfTransactions"]) < 1 or initiation["ControlSum"] <= 0:
        raise Refusal("consent.field_invalid", "A file holds at least one payment of more than zero.",
                      path="Data.Initiation.NumberOfTransactions")


def _amount(amount: dict, path: str, kind: PaymentKind) -> None:
    # Payment Initiation API, InstructedAmount: a positive amount; domestic payments move pounds sterling.
    if float(amount["Amount"]) <= 0:
        raise Refusal("consent.field_invalid", "The amount must be more than zero.", path=f"{path}.Amount")
    if not kind.international and amount["Currency"] != DOMESTIC_CURRENCY:
        raise Refusal("payment.currency_unsupported", f"Domestic payments are in {DOMESTIC_CURRENCY}.",
                      path=f"{path}.Currency")


def _control_parameters(control: dict, kind: PaymentKind) -> None:
    """VRP ControlParameters this bank can hold a payment to: pounds, positive limits, a window that ends after it
    starts, one limit per period type and alignment."""
    _amount(control["MaximumIndividualAmount"], "Data.ControlParameters.MaximumIndividualAmount", kind)
    seen = set()
    for index, limit in enumerate(control["PeriodicLimits"]):
        path = f"Data.ControlParameters.PeriodicLimits.{index}"
        _amount(limit, path, kind)
        if (limit["PeriodType"], limit["PeriodAlignment"]) in seen:
            raise Refusal("consent.field_invalid", "A period type and alignment is limited twice.", path=path)
        seen.add((limit["PeriodType"], limit["PeriodAlignment"]))
    since, until = _date(control, "ValidFromDateTime"), _date(control, "ValidToDateTime")
    if since and until and datetime.fromisoformat(since) >= datetime.fromisoformat(until):
        raise Refusal("consent.invalid_date", "ValidToDateTime must be after ValidFromDateTime.",
                      path="Data.ControlParameters.ValidToDateTime")
    try:  # what the payments will be held to must be readable now (e.g. a Fortnight is Consent-aligned only)
        parse_control_parameters(control, datetime.now(timezone.utc))
    except InvalidControlParameters as problem:
        raise Refusal("consent.field_invalid", f"{problem}.", path="Data.ControlParameters") from None


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
