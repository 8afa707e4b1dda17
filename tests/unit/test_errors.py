import json
from pathlib import Path

import orjson
import pytest

from gateway.errors import REASONS, Refusal, oauth_error_body, ob_error_body

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
