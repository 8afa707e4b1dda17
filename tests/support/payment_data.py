"""What the payment tests send: each Payment Initiation kind's consent and Initiation (`KINDS`), VRP
ControlParameters, and a UK.OBIE.PaymentInitiation.3.1 payment file with the consent Initiation that names it."""
from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timedelta, timezone

import orjson

PISP = "/open-banking/v3.1/pisp"
FILE_TYPE = "UK.OBIE.PaymentInitiation.3.1"
CREDITOR = {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "08080021325698", "Name": "ACME Ltd"}
ABROAD = {"SchemeName": "UK.OBIE.IBAN", "Identification": "DE89370400440532013000", "Name": "Müller GmbH"}


def _ahead(days: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).replace(microsecond=0).isoformat()


def _ids() -> dict:
    return {"InstructionIdentification": secrets.token_hex(8), "EndToEndIdentification": secrets.token_hex(8)}


# kind: (consents path, payments path, consent schema, payment response schema, Data beyond Initiation, Initiation)
KINDS = {
    "domestic": ("domestic-payment-consents", "domestic-payments", "OBWriteDomesticConsentResponse5",
                 "OBWriteDomesticResponse5", {},
                 lambda: {**_ids(), "InstructedAmount": {"Amount": "12.34", "Currency": "GBP"},
                          "CreditorAccount": CREDITOR, "RemittanceInformation": {"Reference": "INV-1"}}),
    "domestic-scheduled": ("domestic-scheduled-payment-consents", "domestic-scheduled-payments",
                           "OBWriteDomesticScheduledConsentResponse5", "OBWriteDomesticScheduledResponse5",
                           {"Permission": "Create"},
                           lambda: {**_ids(), "RequestedExecutionDateTime": _ahead(10),
                                    "InstructedAmount": {"Amount": "20.00", "Currency": "GBP"},
                                    "CreditorAccount": CREDITOR}),
    "domestic-standing-order": ("domestic-standing-order-consents", "domestic-standing-orders",
                                "OBWriteDomesticStandingOrderConsentResponse6",
                                "OBWriteDomesticStandingOrderResponse6", {"Permission": "Create"},
                                lambda: {"Frequency": "IntrvlMnthDay:01:01", "Reference": "GYM",
                                         "NumberOfPayments": "12", "FirstPaymentDateTime": _ahead(20),
                                         "FirstPaymentAmount": {"Amount": "25.00", "Currency": "GBP"},
                                         "CreditorAccount": CREDITOR}),
    "international": ("international-payment-consents", "international-payments",
                      "OBWriteInternationalConsentResponse6", "OBWriteInternationalResponse5", {},
                      lambda: {**_ids(), "CurrencyOfTransfer": "EUR",
                               "InstructedAmount": {"Amount": "100.00", "Currency": "EUR"},
                               "ExchangeRateInformation": {"UnitCurrency": "GBP", "RateType": "Actual"},
                               "CreditorAccount": ABROAD}),
    "international-scheduled": ("international-scheduled-payment-consents", "international-scheduled-payments",
                                "OBWriteInternationalScheduledConsentResponse6",
                                "OBWriteInternationalScheduledResponse6", {"Permission": "Create"},
                                lambda: {**_ids(), "RequestedExecutionDateTime": _ahead(10),
                                         "CurrencyOfTransfer": "USD",
                                         "InstructedAmount": {"Amount": "50.00", "Currency": "USD"},
                                         "CreditorAccount": ABROAD}),
    "international-standing-order": ("international-standing-order-consents", "international-standing-orders",
                                     "OBWriteInternationalStandingOrderConsentResponse7",
                                     "OBWriteInternationalStandingOrderResponse7", {"Permission": "Create"},
                                     lambda: {"Frequency": "IntrvlMnthDay:01:15", "NumberOfPayments": "6",
                                              "FirstPaymentDateTime": _ahead(20), "CurrencyOfTransfer": "EUR",
                                              "InstructedAmount": {"Amount": "30.00", "Currency": "EUR"},
                                              "CreditorAccount": ABROAD}),
}


def vrp_control(maximum: str = "50.00", limits=(("Month", "Calendar", "100.00"),), **window) -> dict:
    """A sweeping VRP consent's ControlParameters."""
    return {"VRPType": ["UK.OBIE.VRPType.Sweeping"], "PSUAuthenticationMethods": ["UK.OBIE.SCANotRequired"],
            "MaximumIndividualAmount": {"Amount": maximum, "Currency": "GBP"},
            "PeriodicLimits": [{"PeriodType": kind, "PeriodAlignment": alignment, "Amount": amount, "Currency": "GBP"}
                               for kind, alignment, amount in limits], **window}


def payment_file(*amounts: str) -> bytes:
    """A UK.OBIE.PaymentInitiation.3.1 file of domestic payments of `amounts` to three payees."""
    payees = [("08080021325698", "ACME Ltd"), ("77100112345678", "Alice Smith (savings)"),
              ("20000055577777", "Dr Jones")]
    return orjson.dumps({"Data": {"DomesticPayments": [
        {"InstructionIdentification": secrets.token_hex(8), "EndToEndIdentification": secrets.token_hex(8),
         "InstructedAmount": {"Amount": amount, "Currency": "GBP"},
         "CreditorAccount": {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": number, "Name": name},
         "RemittanceInformation": {"Reference": "DEC WAGES"}}
        for amount, (number, name) in zip(amounts, payees * len(amounts), strict=False)]}})


def initiation_of(content: bytes, count: str = "3", total: float = 60.0) -> dict:
    return {"FileType": FILE_TYPE, "FileHash": base64.b64encode(hashlib.sha256(content).digest()).decode(),
            "FileReference": "PAYROLL-DEC", "NumberOfTransactions": count, "ControlSum": total}
