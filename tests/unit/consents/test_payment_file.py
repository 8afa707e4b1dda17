"""A file-payment consent's file is kept only when it is the file the consent describes, payment by payment."""
from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from gateway.consents.payment_file import checked_file, file_hash
from gateway.errors import Refusal


def _payment(amount: str = "10.00", currency: str = "GBP", scheme: str = "UK.OBIE.SortCodeAccountNumber") -> dict:
    return {"InstructionIdentification": "i-1", "EndToEndIdentification": "e-1",
            "InstructedAmount": {"Amount": amount, "Currency": currency},
            "CreditorAccount": {"SchemeName": scheme, "Identification": "08080021325698", "Name": "ACME Ltd"}}


def _file(*payments: dict) -> bytes:
    return orjson.dumps({"Data": {"DomesticPayments": list(payments)}})


def _initiation(content: bytes, count: str, total: float) -> dict:
    return {"FileType": "UK.OBIE.PaymentInitiation.3.1", "FileHash": file_hash(content),
            "NumberOfTransactions": count, "ControlSum": total}


def _refusal(content: bytes, initiation: dict) -> Refusal:
    with pytest.raises(Refusal) as refused:
        checked_file(content, initiation)
    return refused.value


def test_a_file_that_agrees_with_its_consent_is_counted_and_summed_exactly():
    content = _file(_payment("0.10"), _payment("0.20"))
    checked = checked_file(content, _initiation(content, "2", 0.3))  # 0.1 + 0.2 is 0.3 in money, not in floats
    assert (checked.count, checked.total, checked.content) == (2, Decimal("0.30"), content)


def test_the_hash_is_base64_of_the_sha256_of_the_bytes_as_uploaded():
    assert file_hash(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # openssl dgst -sha256 -binary | base64


@pytest.mark.parametrize("payment, path", [
    (_payment(currency="EUR"), "Data.DomesticPayments.0.InstructedAmount.Currency"),
    (_payment(scheme="UK.OBIE.IBAN"), "Data.DomesticPayments.0.CreditorAccount.SchemeName"),
    (_payment(amount="0.00"), "Data.DomesticPayments.0.InstructedAmount.Amount"),
    (_payment(amount="-1.00"), "Data.DomesticPayments.0.InstructedAmount.Amount"),
    ({**_payment(), "Surprise": 1}, "Data.DomesticPayments.0"),
])
def test_a_payment_a_domestic_payment_could_not_be_is_refused_naming_it(payment, path):
    content = _file(payment)
    refusal = _refusal(content, _initiation(content, "1", 10.0))
    assert (refusal.reason, refusal.path) == ("file.invalid", path)


@pytest.mark.parametrize("content", [b"[]", b'{"Data": {}}', b'{"Data": {"DomesticPayments": []}}', b'{"Data": 1}'])
def test_a_file_without_payments_is_refused(content):
    assert _refusal(content, _initiation(content, "0", 0.0)).reason == "file.invalid"
