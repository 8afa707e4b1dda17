"""Golden tests: each directory under tests/fixtures/policies/bad/ is refused with exactly the text in its expect.txt.

`{dir}` in expect.txt stands for the case directory as passed to load_policy.
"""
from pathlib import Path

import pytest

from gateway.policy import PolicyError, load_policy

BAD = Path(__file__).parents[2] / "fixtures" / "policies" / "bad"
CASES = sorted(path.name for path in BAD.iterdir() if path.is_dir())


def test_the_corpus_covers_the_documented_failures():
    assert {"yaml_syntax", "duplicate_key", "unknown_key", "missing_format_version", "wrong_type", "unknown_service",
            "unknown_permission", "account_param_not_in_path", "duplicate_route", "anchor_alias", "bad_url",
            "timeout_out_of_range", "several_errors", "route_without_scope", "route_without_response_type",
            "response_type_without_field_rules", "route_without_permissions_without_field_rules",
            "request_type_and_consent_field", "file_or_fields", "pass_through_misused"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_bad_policy_is_refused_with_exact_messages(case):
    directory = BAD / case
    expected = (directory / "expect.txt").read_text(encoding="utf-8").replace("{dir}", str(directory))
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert str(caught.value) + "\n" == expected
