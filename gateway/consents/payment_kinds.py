"""The payment kinds (UK OB v3.1.11 Payment Initiation and VRP APIs) as data: each kind's consent schema, the rules
of this bank on top of it, and how the customer is told what will happen. A new kind is a row here, its consent
path in `policy.model.PAYMENT_CONSENT_PATHS` and its routes in `policies/routes.yaml`."""
from __future__ import annotations

from dataclasses import dataclass

from gateway.consents.model import Kind, Status
from gateway.policy.model import PAYMENT_CONSENT_PATHS

# This bank (the sandbox's, UK Faster Payments): domestic payments in pounds to a sort code and number;
# international payments from a pounds account in these currencies of transfer; payment files of this type
# (CONTRACT §11).
DOMESTIC_CURRENCY = "GBP"
DOMESTIC_SCHEMES = ("UK.OBIE.SortCodeAccountNumber",)
TRANSFER_CURRENCIES = ("EUR", "USD")
FILE_TYPES = ("UK.OBIE.PaymentInitiation.3.1",)


@dataclass(frozen=True)
class PaymentKind:
    kind: Kind
    path: str                       # the consent resource
    api: str                        # the vendored API that defines its schemas
    consent_request: str            # the consent's request schema (checked whole)
    prefix: str                     # of the consent ids
    international: bool = False
    future_field: str | None = None  # an Initiation date-time that must lie ahead (the first or only execution)
    revocable: bool = False         # the TPP may DELETE the consent (a VRP consent is long-lived)
    file: bool = False              # a file of payments: uploaded to the consent before it can be authorised
    has_risk: bool = True           # the consent carries a Risk (OBRisk1); a file-payment consent has none

    @property
    def first_status(self) -> Status:
        """A new consent's status: a file-payment consent awaits its file, any other the customer."""
        return Status.AWAITING_UPLOAD if self.file else Status.AWAITING_AUTHORISATION


def _kind(kind: Kind, api: str, schema: str, prefix: str, *, international: bool = False,
          future_field: str | None = None, revocable: bool = False, file: bool = False) -> PaymentKind:
    return PaymentKind(kind, PAYMENT_CONSENT_PATHS[str(kind)][0], api, schema, prefix, international, future_field,
                       revocable, file, has_risk=not file)


PAYMENT_KINDS: dict[Kind, PaymentKind] = {k.kind: k for k in (
    _kind(Kind.DOMESTIC_PAYMENT, "pisp", "OBWriteDomesticConsent4", "pdc"),
    _kind(Kind.DOMESTIC_SCHEDULED_PAYMENT, "pisp", "OBWriteDomesticScheduledConsent4", "pdsc",
          future_field="RequestedExecutionDateTime"),
    _kind(Kind.DOMESTIC_STANDING_ORDER, "pisp", "OBWriteDomesticStandingOrderConsent5", "pdso",
          future_field="FirstPaymentDateTime"),
    _kind(Kind.INTERNATIONAL_PAYMENT, "pisp", "OBWriteInternationalConsent5", "pic", international=True),
    _kind(Kind.INTERNATIONAL_SCHEDULED_PAYMENT, "pisp", "OBWriteInternationalScheduledConsent5", "pisc",
          international=True, future_field="RequestedExecutionDateTime"),
    _kind(Kind.INTERNATIONAL_STANDING_ORDER, "pisp", "OBWriteInternationalStandingOrderConsent6", "piso",
          international=True, future_field="FirstPaymentDateTime"),
    _kind(Kind.DOMESTIC_VRP, "vrp", "OBDomesticVRPConsentRequest", "vrp", revocable=True),
    _kind(Kind.FILE_PAYMENT, "pisp", "OBWriteFileConsent3", "pfc", future_field="RequestedExecutionDateTime",
          file=True),
)}
