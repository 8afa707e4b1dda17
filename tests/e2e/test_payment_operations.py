"""Every operation of the UK OB v3.1.11 Payment Initiation API (41) and VRP API (7), through `obgw serve` and the
sandbox bank with tokens from the real flow, answers a success its specification declares, with a body of the schema
it declares: one pass over each payment kind's lifecycle, then a check that the pass called every operation."""
from __future__ import annotations

import secrets

import orjson
import pytest
from support.openapi import assert_answers_as_declared, operations
from support.payment_data import CREDITOR, KINDS, PISP, initiation_of, payment_file, vrp_control
from support.tpp import CUSTOMER_PRESENT, Tpp

from gateway.payments.jws import sign_detached

pytestmark = pytest.mark.e2e

FUNDS_CHECKED = {"domestic", "international", "international-scheduled"}  # the kinds whose consent has a funds check


class Sweep:
    """Calls operations as the TPP and checks each answer against its API's declaration; remembers what it called."""

    def __init__(self, tpp: Tpp) -> None:
        self.tpp = tpp
        self.called: set[tuple[str, str]] = set()
        self.cc = tpp.client_credentials("payments")["access_token"]

    def call(self, method: str, template: str, token: str | None = None, body: object = None, **params: str):
        api = "vrp" if "vrp" in template else "pisp"
        content = body if isinstance(body, bytes) else (orjson.dumps(body) if body is not None else None)
        headers = {"Authorization": f"Bearer {token or self.cc}", **CUSTOMER_PRESENT}
        if content is not None:
            headers |= {"content-type": "application/json", "x-idempotency-key": secrets.token_hex(8),
                        "x-jws-signature": sign_detached(content, self.tpp.jwk, self.tpp.client_id)}
        response = self.tpp.http.request(method, self.tpp.base + PISP + template.format(**params), content=content,
                                         headers=headers)
        assert response.status_code < 300, (method, template, response.text)
        assert_answers_as_declared(response, api, method, template)
        self.called.add((method, PISP + template))
        return response


def test_every_payment_and_vrp_operation_answers_as_its_specification_declares(module_tpp):
    sweep = Sweep(module_tpp)
    for kind, (consents, payments, _, _, extra, initiation_of_kind) in KINDS.items():
        initiation = initiation_of_kind()
        consent = sweep.call("POST", f"/{consents}", body={"Data": {**extra, "Initiation": initiation}, "Risk": {}})
        consent_id = consent.json()["Data"]["ConsentId"]
        sweep.call("GET", f"/{consents}/{{ConsentId}}", ConsentId=consent_id)
        token = module_tpp.authorise_payment(consent_id, debtor="acc-alice-current")["access_token"]
        if kind in FUNDS_CHECKED:
            sweep.call("GET", f"/{consents}/{{ConsentId}}/funds-confirmation", token, ConsentId=consent_id)
        paid = sweep.call("POST", f"/{payments}", token, {"Data": {"ConsentId": consent_id, "Initiation": initiation},
                                                           "Risk": {}})
        id_name, payment_id = next((k, v) for k, v in paid.json()["Data"].items() if k.endswith("Id")
                                   and k != "ConsentId")
        param = "InternationalStandingOrderPaymentId" if kind == "international-standing-order" else id_name
        sweep.call("GET", f"/{payments}/{{{param}}}", token, **{param: payment_id})
        sweep.call("GET", f"/{payments}/{{{param}}}/payment-details", token, **{param: payment_id})

    content = payment_file("10.00", "20.00", "30.00")
    file_initiation = initiation_of(content)
    consent_id = sweep.call("POST", "/file-payment-consents",
                            body={"Data": {"Initiation": file_initiation}}).json()["Data"]["ConsentId"]
    sweep.call("GET", "/file-payment-consents/{ConsentId}", ConsentId=consent_id)
    sweep.call("POST", "/file-payment-consents/{ConsentId}/file", body=content, ConsentId=consent_id)
    sweep.call("GET", "/file-payment-consents/{ConsentId}/file", ConsentId=consent_id)
    token = module_tpp.authorise_payment(consent_id, debtor="acc-alice-current")["access_token"]
    paid = sweep.call("POST", "/file-payments", token, {"Data": {"ConsentId": consent_id,
                                                                 "Initiation": file_initiation}})
    payment_id = paid.json()["Data"]["FilePaymentId"]
    for suffix in ("", "/payment-details", "/report-file"):
        sweep.call("GET", "/file-payments/{FilePaymentId}" + suffix, token, FilePaymentId=payment_id)

    initiation = {"CreditorAccount": CREDITOR}
    consent_id = sweep.call("POST", "/domestic-vrp-consents", body={
        "Data": {"ControlParameters": vrp_control(), "Initiation": initiation}, "Risk": {}}).json()["Data"]["ConsentId"]
    sweep.call("GET", "/domestic-vrp-consents/{ConsentId}", ConsentId=consent_id)
    token = module_tpp.authorise_payment(consent_id, debtor="acc-alice-current")["access_token"]
    amount = {"Amount": "5.00", "Currency": "GBP"}
    sweep.call("POST", "/domestic-vrp-consents/{ConsentId}/funds-confirmation", token,
               {"Data": {"ConsentId": consent_id, "InstructedAmount": amount}}, ConsentId=consent_id)
    paid = sweep.call("POST", "/domestic-vrps", token, {"Data": {
        "ConsentId": consent_id, "PSUAuthenticationMethod": "UK.OBIE.SCANotRequired",
        "VRPType": "UK.OBIE.VRPType.Sweeping", "Initiation": initiation,
        "Instruction": {"InstructionIdentification": "i-1", "EndToEndIdentification": "e-1",
                        "InstructedAmount": amount, "CreditorAccount": CREDITOR}}, "Risk": {}})
    payment_id = paid.json()["Data"]["DomesticVRPId"]
    sweep.call("GET", "/domestic-vrps/{DomesticVRPId}", token, DomesticVRPId=payment_id)
    sweep.call("GET", "/domestic-vrps/{DomesticVRPId}/payment-details", token, DomesticVRPId=payment_id)
    sweep.call("DELETE", "/domestic-vrp-consents/{ConsentId}", ConsentId=consent_id)

    every = operations("pisp", PISP) | operations("vrp", PISP)
    assert len(every) == 48
    assert sweep.called == every, sorted(every - sweep.called)
