"""A file-payment consent's file (UK OB v3.1.11 Payment Initiation API, file-payment-consents/{ConsentId}/file),
checked against what the consent says of it before it is kept: the bytes against `FileHash` (base64 of their
SHA-256), and, for the `UK.OBIE.PaymentInitiation.3.1` file type (JSON, `Data.DomesticPayments`: a list of domestic
payment initiations), each payment against the v3.1.11 domestic Initiation schema and this bank's rules for a
domestic payment, their number against `NumberOfTransactions` and their sum against `ControlSum`.

The customer authorises what the consent states (how many payments, how much in all), so the file must agree with
it exactly; the bank checks the file again when it pays it.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import orjson

from gateway.consents.payment_kinds import DOMESTIC_CURRENCY, DOMESTIC_SCHEMES
from gateway.errors import Refusal
from gateway.specs import first_problem

MAX_FILE_BYTES = 1_048_576  # the largest file taken (some 3,000 payments); kept in Redis with its consent
PAYMENTS = "Data.DomesticPayments"
_INITIATION = "Data.Initiation."


@dataclass(frozen=True)
class PaymentFile:
    content: bytes
    count: int
    total: Decimal


def file_hash(content: bytes) -> str:
    """`FileHash` as UK OB defines it: the base64 encoding of the file's SHA-256."""
    return base64.b64encode(hashlib.sha256(content).digest()).decode("ascii")


def checked_file(content: bytes, initiation: dict) -> PaymentFile:
    """The uploaded file, once it is the one the consent's Initiation describes; else a Refusal naming the field."""
    if file_hash(content) != initiation["FileHash"]:
        raise Refusal("file.mismatch", "The file does not match the consent's FileHash.",
                      path=_INITIATION + "FileHash")
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise Refusal("file.invalid", f"A {initiation['FileType']} file is a JSON document.", path="File") from None
    data = document.get("Data") if isinstance(document, dict) else None
    payments = data.get("DomesticPayments") if isinstance(data, dict) else None
    if not isinstance(payments, list) or not payments:
        raise Refusal("file.invalid", f"{PAYMENTS} must list the payments.", path=PAYMENTS)
    total = sum((_amount(payment, index) for index, payment in enumerate(payments)), Decimal(0))
    if initiation["NumberOfTransactions"] != str(len(payments)):
        raise Refusal("file.mismatch", f"The file holds {len(payments)} payments, not the consent's "
                      "NumberOfTransactions.", path=_INITIATION + "NumberOfTransactions")
    if Decimal(str(initiation["ControlSum"])) != total:
        raise Refusal("file.mismatch", f"The file's payments add up to {total}, not the consent's ControlSum.",
                      path=_INITIATION + "ControlSum")
    return PaymentFile(content, len(payments), total)


def _amount(payment: object, index: int) -> Decimal:
    """One payment of the file, checked as a domestic payment's Initiation would be: its amount."""
    path = f"{PAYMENTS}.{index}"
    problem = first_problem({"Data": {"ConsentId": "-", "Initiation": payment}, "Risk": {}}, "OBWriteDomestic2")
    if problem is not None:
        where, message, _ = problem
        raise Refusal("file.invalid", message.replace("Data.Initiation", path),
                      path=where.replace("Data.Initiation", path))
    payment = cast(dict[str, Any], payment)  # schema-valid: an object
    amount = payment["InstructedAmount"]
    if amount["Currency"] != DOMESTIC_CURRENCY:
        raise Refusal("file.invalid", f"Each payment is in {DOMESTIC_CURRENCY}.",
                      path=f"{path}.InstructedAmount.Currency")
    if payment["CreditorAccount"]["SchemeName"] not in DOMESTIC_SCHEMES:
        raise Refusal("file.invalid", f"Each creditor account is a {DOMESTIC_SCHEMES[0]}.",
                      path=f"{path}.CreditorAccount.SchemeName")
    value = Decimal(amount["Amount"])  # the schema's pattern admits figures only
    if value <= 0:
        raise Refusal("file.invalid", "Each amount is more than zero.", path=f"{path}.InstructedAmount.Amount")
    return value
