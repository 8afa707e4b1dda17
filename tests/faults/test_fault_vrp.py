"""A VRP payment whose outcome is unknown counts until it is resolved, and the operator can resolve it.

The bank (behind the slow bank) takes longer than the payments service's timeout: the TPP gets 504, and since the bank
may yet pay, the gateway keeps the payment's claim on the consent's periodic limit. A payment that would fit only if
the unknown one did not count is refused before the bank. `obgw consents vrp-held` lists the claim; the operator reads
the bank's ledger (the bank, once it got the payment, refused it: the consent's limit is beyond alice's funds),
resolves the claim `--not-paid`, and the same payment then passes.

tests/e2e/test_vrp.py holds payments to their limits with a bank that answers; here the bank does not answer in time."""
from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from support.faults import wait_until
from support.gateway import bank_gateway
from support.openapi import assert_conforms
from support.payment_data import CREDITOR, PISP, vrp_control
from support.processes import ROOT
from support.tpp import Tpp

from gateway.payments.jws import sign_detached

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 1000       # the payments service's timeout in this test's policy (the shipped one: 5000, the default)
BANK_DELAY_MS = 3000    # how long the slow bank holds the first payment before the bank gets it
LIMIT = "1000000.00"    # the consent's monthly limit (and individual maximum): far beyond alice's funds
FAILS = "UK.OBIE.Rules.FailsControlParameters"
INITIATION = {"CreditorAccount": CREDITOR, "RemittanceInformation": {"Reference": "SWEEP"}}


def _policies(directory: Path) -> Path:
    """The shipped policies, the payments service's timeout cut to TIMEOUT_MS."""
    shutil.copytree(ROOT / "policies", directory)
    services = yaml.safe_load((directory / "services.yaml").read_text())
    services["services"]["payments"]["timeout_ms"] = TIMEOUT_MS
    (directory / "services.yaml").write_text(yaml.safe_dump(services))
    return directory


def _send(tpp: Tpp, path: str, body: dict, token: str) -> httpx.Response:
    """POST `body` signed, with a fresh idempotency key, as a token's holder."""
    content = orjson.dumps(body)
    signature = sign_detached(content, tpp.jwk, tpp.client_id)
    return tpp.http.post(tpp.base + PISP + path, content=content, headers={
        "Authorization": f"Bearer {token}", "content-type": "application/json",
        "x-idempotency-key": secrets.token_hex(8), "x-jws-signature": signature})


def _payment(consent_id: str, amount: str) -> dict:
    instruction = {"InstructionIdentification": secrets.token_hex(8), "EndToEndIdentification": secrets.token_hex(8),
                   "InstructedAmount": {"Amount": amount, "Currency": "GBP"}, "CreditorAccount": CREDITOR}
    return {"Data": {"ConsentId": consent_id, "PSUAuthenticationMethod": "UK.OBIE.SCANotRequired",
                     "VRPType": "UK.OBIE.VRPType.Sweeping", "Initiation": INITIATION, "Instruction": instruction},
            "Risk": {}}


def _error_code(response: httpx.Response) -> str:
    assert_conforms(response.json(), "OBErrorResponse1", "vrp")
    return response.json()["Errors"][0]["ErrorCode"]


def test_an_unknown_vrp_outcome_counts_until_the_operator_resolves_it(tmp_path, pki, ledger_bank, slow_bank):
    sandbox = ledger_bank
    slow_url, control = slow_bank
    gw = bank_gateway(tmp_path / "gw", pki, (sandbox.accounts_url, slow_url), workers=2,
                      OBGW_POLICY_DIR=str(_policies(tmp_path / "policies")))
    tpp = Tpp(gw.base, pki, "tpp-demo")
    try:
        cc = tpp.client_credentials("payments")["access_token"]
        control_parameters = vrp_control(maximum=LIMIT, limits=(("Month", "Consent", LIMIT),))
        created = _send(tpp, "/domestic-vrp-consents",
                        {"Data": {"ControlParameters": control_parameters, "Initiation": INITIATION}, "Risk": {}}, cc)
        assert created.status_code == 201, created.text
        consent_id = created.json()["Data"]["ConsentId"]
        token = tpp.authorise_payment(consent_id, debtor="acc-alice-current")["access_token"]

        # The bank does not answer in time: 504, outcome unknown (the gateway gave up; the bank may still pay).
        control.post("/control/delay", params={"ms": BANK_DELAY_MS})
        started = time.monotonic()
        unknown = _send(tpp, "/domestic-vrps", _payment(consent_id, LIMIT), token)
        assert unknown.status_code == 504, unknown.text
        assert time.monotonic() - started < BANK_DELAY_MS / 1000  # answered at the gateway's timeout, not the bank's
        assert _error_code(unknown) == "UK.OBIE.UnexpectedError"
        control.post("/control/delay", params={"ms": 0})

        # It counts: £25 fits in the limit only if the unknown payment was not made.
        small = _payment(consent_id, "25.00")
        refused = _send(tpp, "/domestic-vrps", small, token)
        assert (refused.status_code, _error_code(refused)) == (400, FAILS), refused.text

        # The operator finds it held...
        listed = gw.cli("consents", "vrp-held", consent_id)
        assert listed.returncode == 0, listed.stderr
        [row] = [line.split("\t") for line in listed.stdout.splitlines()]
        claim_id, amount, _claimed, state = row
        assert (amount, state) == (f"{LIMIT} GBP", "held")  # within payments/vrp.py's HOLD_SECONDS: not overdue
        # ... and checks with the bank: it got the payment after the gateway gave up, and refused it (no funds).
        answered = wait_until(lambda: [done for done in control.get("/control/done").json()
                                       if done["path"].endswith("/domestic-vrps")],
                              BANK_DELAY_MS / 1000 + 10, "the bank answered the payment the gateway gave up on")
        assert [done["status"] for done in answered] == [400]
        assert sandbox.payments_made() == []

        resolved = gw.cli("consents", "vrp-resolve", consent_id, claim_id, "--not-paid")
        assert resolved.returncode == 0, resolved.stderr
        assert resolved.stdout.strip() == f"released {claim_id}: {LIMIT} GBP given back"
        assert gw.cli("consents", "vrp-held", consent_id).stdout == ""
        again = gw.cli("consents", "vrp-resolve", consent_id, claim_id, "--paid")
        assert again.returncode == 2 and f"no held claim {claim_id}" in again.stderr

        # The room is back: the same payment passes, and the bank pays it.
        passed = _send(tpp, "/domestic-vrps", small, token)
        assert passed.status_code == 201, passed.text
        assert [paid["consent_id"] for paid in sandbox.payments_made()] == [consent_id]
        operator = [r for r in gw.audit("--consent", consent_id) if r["method"] == "CLI"]
        assert [(r["route"], r["reason"]) for r in operator] == [
            ("obgw consents vrp-resolve not-paid", "operator.consents_vrp_resolve_not_paid")]
    finally:
        tpp.close()
        assert gw.stop() == 0
