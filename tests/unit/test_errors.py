import json
from pathlib import Path

import orjson
import pytest

from gateway.errors import (
    LISTED_ERROR_CODES,
    REASONS,
    Refusal,
    namespaced,
    oauth_error_body,
    ob_error_body,
)

SPEC = Path(__file__).resolve().parents[2] / "gateway/specs/ob-uk/v3.1.11/account-info-openapi.json"
OB_CODES = set(json.loads(SPEC.read_text())["components"]["schemas"]["OBError1"]["properties"]["ErrorCode"]
               ["x-namespaced-enum"])


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_every_catalogued_refusal_renders_a_valid_ob_error(reason):
    body = orjson.loads(ob_error_body(Refusal(reason), "id-1"))
    assert set(body) == {"Code", "Id", "Message", "Errors"}
    assert body["Code"] == str(REASONS[reason].status) and body["Id"] == "id-1"
    # A UK OB code, or (only where UK OB defines none, as for 429) one in obgw's own namespace.
    code = body["Errors"][0]["ErrorCode"]
    assert code in OB_CODES or (code.startswith("OBGW.") and REASONS[reason].status == 429)
    assert 1 <= len(body["Message"]) <= 500


@pytest.mark.parametrize("api", ["account-info", "payment-initiation", "confirmation-funds"])
def test_the_listed_error_codes_are_exactly_the_v3_1_11_specs(api):
    spec = json.loads((SPEC.parent / f"{api}-openapi.json").read_text())
    assert set(spec["components"]["schemas"]["OBError1"]["properties"]["ErrorCode"]["x-namespaced-enum"]) == \
        LISTED_ERROR_CODES


@pytest.mark.parametrize(("code", "shown"), [
    ("UK.OBIE.Field.Missing", "UK.OBIE.Field.Missing"),                      # listed: as it is
    ("UK.OBIE.Rules.InsufficientFunds", "OBGW.Rules.InsufficientFunds"),     # invented UK.OBIE.*: ours
    ("OBGW.Rules.RateLimitExceeded", "OBGW.Rules.RateLimitExceeded"),       # already ours
    ("ACME.NoMoney", "OBGW.Bank.ACME.NoMoney"),                              # a bank's own namespace
])
def test_an_unlisted_error_code_moves_into_obgws_namespace(code, shown):
    assert namespaced(code) == shown


def test_reason_ids_are_stage_dot_reason():
    for reason in REASONS:
        stage, _, name = reason.partition(".")
        assert stage and name and reason == reason.lower()


def test_a_detail_message_replaces_the_catalogue_text_in_the_error_entry_only():
    refusal = Refusal("backend.error", "The bank's service answered 503.")
    body = orjson.loads(ob_error_body(refusal))
    assert body["Message"] == REASONS["backend.error"].message
    assert body["Errors"][0]["Message"] == "The bank's service answered 503."
    assert orjson.loads(oauth_error_body(refusal))["error_description"] == "The bank's service answered 503."
