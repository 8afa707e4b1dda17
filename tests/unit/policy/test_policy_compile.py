import dataclasses
import shutil
from pathlib import Path

import pytest

from gateway.policy import PolicyError, RoutePolicy, ServicePolicy, load_policy
from gateway.policy.model import WindowPolicy

ROOT = Path(__file__).parents[3]
SHIPPED = ROOT / "policies"
GOOD = ROOT / "tests" / "fixtures" / "policies" / "good"


def route(policy, route_id) -> RoutePolicy:
    return next(r for r in policy.routes if r.id == route_id)


AISP, PISP, CBPII = "/open-banking/v3.1/aisp", "/open-banking/v3.1/pisp", "/open-banking/v3.1/cbpii"


# Each payment kind: its path, its resource id and its answer (PIS v3.1.11).
PAYMENT_KINDS = [
    ("domestic-payments", "DomesticPaymentId", "OBWriteDomesticResponse5"),
    ("domestic-scheduled-payments", "DomesticScheduledPaymentId", "OBWriteDomesticScheduledResponse5"),
    ("domestic-standing-orders", "DomesticStandingOrderId", "OBWriteDomesticStandingOrderResponse6"),
    ("international-payments", "InternationalPaymentId", "OBWriteInternationalResponse5"),
    ("international-scheduled-payments", "InternationalScheduledPaymentId", "OBWriteInternationalScheduledResponse6"),
    ("international-standing-orders", "InternationalStandingOrderPaymentId",
     "OBWriteInternationalStandingOrderResponse7"),
]


def test_the_shipped_policy_routes_the_sandbox_bank():
    policy = load_policy(SHIPPED)
    assert {name: s.url for name, s in policy.services.items()} == {
        "accounts": "http://127.0.0.1:8081", "payments": "http://127.0.0.1:8082"}
    assert [(r.method, r.path, r.service.name, r.response_type) for r in policy.routes] == [
        ("GET", f"{AISP}/accounts", "accounts", "OBReadAccount6"),
        ("GET", f"{AISP}/accounts/{{AccountId}}", "accounts", "OBReadAccount6"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/balances", "accounts", "OBReadBalance1"),
        ("GET", f"{AISP}/balances", "accounts", "OBReadBalance1"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/transactions", "accounts", "OBReadTransaction6"),
        ("GET", f"{AISP}/transactions", "accounts", "OBReadTransaction6"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/beneficiaries", "accounts", "OBReadBeneficiary5"),
        ("GET", f"{AISP}/beneficiaries", "accounts", "OBReadBeneficiary5"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/direct-debits", "accounts", "OBReadDirectDebit2"),
        ("GET", f"{AISP}/direct-debits", "accounts", "OBReadDirectDebit2"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/standing-orders", "accounts", "OBReadStandingOrder6"),
        ("GET", f"{AISP}/standing-orders", "accounts", "OBReadStandingOrder6"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/scheduled-payments", "accounts", "OBReadScheduledPayment3"),
        ("GET", f"{AISP}/scheduled-payments", "accounts", "OBReadScheduledPayment3"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/statements", "accounts", "OBReadStatement2"),
        ("GET", f"{AISP}/statements", "accounts", "OBReadStatement2"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/statements/{{StatementId}}", "accounts", "OBReadStatement2"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/statements/{{StatementId}}/file", "accounts", "File"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/statements/{{StatementId}}/transactions", "accounts",
         "OBReadTransaction6"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/product", "accounts", "OBReadProduct2"),
        ("GET", f"{AISP}/products", "accounts", "OBReadProduct2"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/offers", "accounts", "OBReadOffer1"),
        ("GET", f"{AISP}/offers", "accounts", "OBReadOffer1"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/party", "accounts", "OBReadParty2"),
        ("GET", f"{AISP}/accounts/{{AccountId}}/parties", "accounts", "OBReadParty3"),
        ("GET", f"{AISP}/party", "accounts", "OBReadParty2"),
        *(route for kind, param, answer in PAYMENT_KINDS for route in (
            ("POST", f"{PISP}/{kind}", "payments", answer),
            ("GET", f"{PISP}/{kind}/{{{param}}}", "payments", answer),
            ("GET", f"{PISP}/{kind}/{{{param}}}/payment-details", "payments", "OBWritePaymentDetailsResponse1"))),
        ("POST", f"{PISP}/file-payments", "payments", "OBWriteFileResponse3"),
        ("GET", f"{PISP}/file-payments/{{FilePaymentId}}", "payments", "OBWriteFileResponse3"),
        ("GET", f"{PISP}/file-payments/{{FilePaymentId}}/payment-details", "payments",
         "OBWritePaymentDetailsResponse1"),
        ("GET", f"{PISP}/file-payments/{{FilePaymentId}}/report-file", "payments", "File"),
        *(("GET", f"{PISP}/{kind}-consents/{{ConsentId}}/funds-confirmation", "payments",
           "OBWriteFundsConfirmationResponse1")
          for kind in ("domestic-payment", "international-payment", "international-scheduled-payment")),
        ("POST", f"{PISP}/domestic-vrps", "payments", "OBDomesticVRPResponse"),
        ("GET", f"{PISP}/domestic-vrps/{{DomesticVRPId}}", "payments", "OBDomesticVRPResponse"),
        ("GET", f"{PISP}/domestic-vrps/{{DomesticVRPId}}/payment-details", "payments", "OBDomesticVRPDetails"),
        ("POST", f"{PISP}/domestic-vrp-consents/{{ConsentId}}/funds-confirmation", "payments",
         "OBVRPFundsConfirmationResponse"),
        ("POST", f"{CBPII}/funds-confirmations", "accounts", "OBFundsConfirmationResponse1"),
    ]
    assert all(r.upstream_path == r.path for r in policy.routes)
    assert route(policy, "ais.transactions.list").permissions == {"ReadTransactionsBasic", "ReadTransactionsDetail"}
    assert route(policy, "ais.balances.list").account_param == "AccountId"
    assert {r.scope for r in policy.routes if r.path.startswith(f"{PISP}/")} == {"payments"}
    assert {r.scope for r in policy.routes if r.path.startswith(f"{CBPII}/")} == {"fundsconfirmations"}
    # Every AIS route reads consented data, so every one needs a permission; a bulk route asks the bank for the
    # selected accounts only, an account route checks its account.
    ais = [r for r in policy.routes if r.path.startswith(f"{AISP}/")]
    assert len(ais) == 26 and all(r.permissions for r in ais)
    assert all(r.account_param or r.selected_accounts_param for r in ais if r.id != "ais.party.psu")


def test_every_shipped_route_has_the_field_rules_of_its_response_type():
    """Nothing leaves by omission: a route with or without permissions is cut by the rules of its response type."""
    policy = load_policy(SHIPPED)
    for r in policy.routes:
        assert r.fields is policy.fields[r.response_type], r.id
    assert route(policy, "pis.domestic_payments.create").fields.response_type == "OBWriteDomesticResponse5"
    statement_file = route(policy, "ais.statements.file").fields
    assert (statement_file.media_types, statement_file.rules) == (frozenset({"application/pdf", "application/json"}),
                                                                  ())
    assert policy.fields["OBReadStatement2"].window.end_field == "EndDateTime"


def test_the_shipped_funds_confirmation_route_checks_its_body_and_consent():
    funds = route(load_policy(SHIPPED), "cbpii.funds_confirmations.create")
    assert (funds.method, funds.scope, funds.permissions) == ("POST", "fundsconfirmations", frozenset())
    assert (funds.request_type, funds.consent_field, funds.debtor_account) == (
        "OBFundsConfirmation1", ("Data", "ConsentId"), True)


def test_defaults_fill_what_the_good_fixture_leaves_out():
    policy = load_policy(GOOD)
    assert policy.services["payments"] == ServicePolicy("payments", "http://127.0.0.1:8082", 1000, 5000, 100)
    # max_concurrent defaults to max_connections
    assert policy.services["core"] == ServicePolicy("core", "https://core.bank.example:8443/api", 250, 2000, 20, 20)
    bare = route(policy, "pis.domestic_payments.get")
    assert (bare.upstream_path, bare.scope, bare.permissions, bare.account_param, bare.response_type,
            bare.max_body_bytes) == (bare.path, "payments", frozenset(), None, "OBWriteDomesticResponse5", 65_536)
    assert (bare.request_type, bare.consent_field, bare.debtor_account) == (None, None, False)
    # Without permissions, the route is still cut by its response type's rules.
    assert bare.fields is policy.fields["OBWriteDomesticResponse5"]


def test_a_pass_through_route_has_no_response_type_and_no_field_rules():
    status = route(load_policy(GOOD), "bank.status")
    assert (status.response_type, status.fields, status.permissions) == (None, None, frozenset())


def test_request_type_consent_field_and_debtor_account_are_compiled():
    funds = route(load_policy(GOOD), "cbpii.funds_confirmations.create")
    assert (funds.request_type, funds.consent_field, funds.debtor_account) == (
        "OBFundsConfirmation1", ("Data", "ConsentId"), True)
    assert funds.fields.response_type == "OBFundsConfirmationResponse1"


def test_a_file_response_and_an_end_field_window_are_compiled():
    policy = load_policy(GOOD)
    statement_file = route(policy, "ais.statements.file").fields
    assert statement_file.response_type == "File"
    assert statement_file.media_types == frozenset({"application/pdf", "text/csv"})
    assert (statement_file.rules, statement_file.records, statement_file.window) == ((), None, None)
    statements = route(policy, "ais.statements.list").fields
    assert statements.media_types is None
    assert statements.window == WindowPolicy("StartDateTime", "fromStatementDateTime", "toStatementDateTime",
                                             "EndDateTime")
    assert [(rule.path, rule.rewrite) for rule in statements.rules if rule.rewrite] == [
        ("Links.Self", "public_url"), ("Links.Next", "public_link")]


def test_a_route_timeout_overrides_its_service_timeout():
    policy = load_policy(GOOD)
    assert route(policy, "ais.accounts.get").timeout_ms == 1500
    assert route(policy, "ais.transactions.list").timeout_ms == 2000


def test_the_compiled_policy_cannot_be_changed():
    policy = load_policy(GOOD)
    with pytest.raises(TypeError):
        policy.services["evil"] = policy.services["core"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.routes[0].path = "/"  # type: ignore[misc]
    assert isinstance(policy.routes, tuple)


def test_service_urls_replace_a_service_url_by_name():
    policy = load_policy(GOOD, {"payments": "https://payments.internal:9443/base/"})
    assert policy.services["payments"].url == "https://payments.internal:9443/base"
    assert route(policy, "pis.domestic_payments.create").upstream_target({}) == (
        "https://payments.internal:9443/base/open-banking/v3.1/pisp/domestic-payments")


def test_service_urls_naming_an_unknown_service_or_holding_a_bad_url_are_refused():
    with pytest.raises(PolicyError) as caught:
        load_policy(GOOD, {"ledger": "http://127.0.0.1:1", "core": "ftp://core"})
    assert [(p.line, p.col, p.path, p.message) for p in caught.value.problems] == [
        (4, 1, "services",
         "service URL override for unknown service 'ledger' (services.yaml defines: core, payments)"),
        (6, 10, "services.core.url",
         "invalid override URL 'ftp://core' for this service: the scheme must be http or https"),
    ]


@pytest.mark.parametrize(("value", "segment"), [
    ("acc-1", "acc-1"),
    ("a/b", "a%2Fb"),
    ("../admin", "..%2Fadmin"),
    ("..", "%2E%2E"),
    (".", "%2E"),
    ("x?y#z", "x%3Fy%23z"),
    ("£ 5", "%C2%A3%205"),
])
def test_upstream_target_keeps_each_parameter_inside_its_segment(value, segment):
    policy = load_policy(GOOD)
    assert route(policy, "ais.transactions.list").upstream_target({"AccountId": value}) == (
        f"https://core.bank.example:8443/api/v2/transactions/{segment}")


def test_a_missing_directory_is_reported(tmp_path):
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "nowhere")
    assert str(caught.value) == f"{tmp_path / 'nowhere'}: not a policy directory\n1 error in 1 file"


def test_file_names_in_messages_are_the_directory_as_given(tmp_path, monkeypatch):
    shutil.copytree(GOOD, tmp_path / "policies")
    (tmp_path / "policies" / "routes.yaml").write_text("format_version: 1\nroutes:\n  - id: x\n    scope: payments\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PolicyError) as caught:
        load_policy(Path("policies"))
    *lines, _ = str(caught.value).splitlines()
    assert "policies/routes.yaml:3:5: routes[0].method: required key is missing" in lines
    assert all(line.startswith("policies/routes.yaml:") for line in lines)


def test_an_invalid_service_does_not_make_its_routes_report_an_unknown_service(tmp_path):
    shutil.copytree(GOOD, tmp_path, dirs_exist_ok=True)
    text = (tmp_path / "services.yaml").read_text().replace("max_connections: 20", "max_connections: 0")
    (tmp_path / "services.yaml").write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)
    assert [p.path for p in caught.value.problems] == ["services.core.max_connections"]


def test_records_on_a_file_are_refused_where_they_are_written(tmp_path):
    """A file is never parsed, so no record of it could be filtered: records on it are refused at the key (the
    golden case file_or_fields covers account_field and window, and fields with file)."""
    shutil.copytree(GOOD, tmp_path, dirs_exist_ok=True)
    text = (tmp_path / "fields.yaml").read_text().replace(
        "  File:\n", "  File:\n    records: Data.Statement\n")
    (tmp_path / "fields.yaml").write_text(text)
    line = text.splitlines().index("  File:") + 2  # the line after it
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)
    assert (line, 5, "responses.File.records", "a file is passed unmodified: records cannot apply to it") in [
        (p.line, p.col, p.path, p.message) for p in caught.value.problems]
    assert {p.file for p in caught.value.problems} == {str(tmp_path / "fields.yaml")}


def test_a_trace_identity_that_is_not_a_field_of_the_records_is_refused_where_it_is_written(tmp_path):
    """fields.yaml `trace`: each identity field must be a field of the records at `at` in the v3.1.11 schema, or
    no record of that type could ever be traced."""
    shutil.copytree(ROOT / "policies", tmp_path, dirs_exist_ok=True)
    text = (tmp_path / "fields.yaml").read_text()
    old = 'trace: {at: "Data.Transaction[]", identity: [AccountId, TransactionId]}'
    assert old in text
    text = text.replace(old, 'trace: {at: "Data.Transaction[]", identity: [AccountId, TransactionNumber]}')
    (tmp_path / "fields.yaml").write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), start=1) if "TransactionNumber" in t)
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)
    assert [(p.line, p.path, p.message) for p in caught.value.problems] == [
        (line, "responses.OBReadTransaction6.trace.identity[1]",
         "'Data.Transaction[].TransactionNumber' is not a field of OBReadTransaction6 (v3.1.11)")]
