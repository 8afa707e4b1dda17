import dataclasses
import shutil
from pathlib import Path

import pytest

from gateway.policy import PolicyError, RoutePolicy, ServicePolicy, load_policy

ROOT = Path(__file__).parents[3]
SHIPPED = ROOT / "policies"
GOOD = ROOT / "tests" / "fixtures" / "policies" / "good"


def route(policy, route_id) -> RoutePolicy:
    return next(r for r in policy.routes if r.id == route_id)


def test_the_shipped_policy_routes_the_sandbox_bank():
    policy = load_policy(SHIPPED)
    assert {name: s.url for name, s in policy.services.items()} == {
        "accounts": "http://127.0.0.1:8081", "payments": "http://127.0.0.1:8082"}
    assert [(r.method, r.path, r.service.name, r.response_type) for r in policy.routes] == [
        ("GET", "/open-banking/v3.1/aisp/accounts", "accounts", "OBReadAccount6"),
        ("GET", "/open-banking/v3.1/aisp/accounts/{AccountId}", "accounts", "OBReadAccount6"),
        ("GET", "/open-banking/v3.1/aisp/accounts/{AccountId}/balances", "accounts", "OBReadBalance1"),
        ("GET", "/open-banking/v3.1/aisp/accounts/{AccountId}/transactions", "accounts", "OBReadTransaction6"),
        ("POST", "/open-banking/v3.1/pisp/domestic-payments", "payments", "OBWriteDomesticResponse5"),
        ("GET", "/open-banking/v3.1/pisp/domestic-payments/{DomesticPaymentId}", "payments",
         "OBWriteDomesticResponse5"),
    ]
    assert all(r.upstream_path == r.path for r in policy.routes)
    assert route(policy, "ais.transactions.list").permissions == {"ReadTransactionsBasic", "ReadTransactionsDetail"}
    assert route(policy, "ais.balances.list").account_param == "AccountId"
    assert {r.scope for r in policy.routes if r.path.startswith("/open-banking/v3.1/pisp/")} == {"payments"}


def test_defaults_fill_what_the_good_fixture_leaves_out():
    policy = load_policy(GOOD)
    assert policy.services["payments"] == ServicePolicy("payments", "http://127.0.0.1:8082", 1000, 5000, 100)
    # max_concurrent defaults to max_connections
    assert policy.services["core"] == ServicePolicy("core", "https://core.bank.example:8443/api", 250, 2000, 20, 20)
    bare = route(policy, "pis.domestic_payments.get")
    assert (bare.upstream_path, bare.scope, bare.permissions, bare.account_param, bare.response_type,
            bare.max_body_bytes) == (bare.path, "payments", frozenset(), None, None, 65_536)


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
    assert str(caught.value).splitlines()[0] == "policies/routes.yaml:3:5: routes[0].method: required key is missing"


def test_an_invalid_service_does_not_make_its_routes_report_an_unknown_service(tmp_path):
    shutil.copytree(GOOD, tmp_path, dirs_exist_ok=True)
    text = (tmp_path / "services.yaml").read_text().replace("max_connections: 20", "max_connections: 0")
    (tmp_path / "services.yaml").write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)
    assert [p.path for p in caught.value.problems] == ["services.core.max_connections"]
