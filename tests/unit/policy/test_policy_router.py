from pathlib import Path

import pytest

from gateway.policy import (
    MethodNotAllowed,
    RouteMatch,
    RoutePolicy,
    ServicePolicy,
    load_policy,
)
from gateway.policy.router import Router

GOOD = Path(__file__).parents[2] / "fixtures" / "policies" / "good"
ACCOUNTS = "/open-banking/v3.1/aisp/accounts"
SERVICE = ServicePolicy("core", "http://127.0.0.1:8081", 1000, 5000, 100)


def make_route(route_id: str, method: str, path: str) -> RoutePolicy:
    return RoutePolicy(route_id, method, path, SERVICE, path, None, frozenset(), None, None, 5000)


@pytest.fixture(scope="module")
def policy():
    return load_policy(GOOD)


def test_a_path_with_parameters_matches_and_yields_them(policy):
    found = policy.match("GET", f"{ACCOUNTS}/acc-1/transactions")
    assert isinstance(found, RouteMatch)
    assert (found.route.id, dict(found.path_params)) == ("ais.transactions.list", {"AccountId": "acc-1"})


def test_a_path_without_parameters_matches_with_none(policy):
    found = policy.match("POST", "/open-banking/v3.1/pisp/domestic-payments")
    assert (found.route.id, dict(found.path_params)) == ("pis.domestic_payments.create", {})


def test_a_known_path_with_another_method_is_method_not_allowed(policy):
    assert policy.match("PUT", f"{ACCOUNTS}/acc-1") == MethodNotAllowed(("DELETE", "GET"))
    assert policy.match("GET", "/open-banking/v3.1/pisp/domestic-payments") == MethodNotAllowed(("POST",))


@pytest.mark.parametrize("path", [
    ACCOUNTS, f"{ACCOUNTS}/", f"{ACCOUNTS}/acc-1/", f"{ACCOUNTS}/acc-1/balances", "/",
    "/OPEN-BANKING/v3.1/aisp/accounts/a",
])
def test_an_unknown_path_matches_nothing(policy, path):
    assert policy.match("GET", path) is None


def test_a_literal_segment_beats_a_parameter_declared_before_it(policy):
    assert policy.match("GET", f"{ACCOUNTS}/summary").route.id == "ais.accounts.summary"
    assert policy.match("GET", f"{ACCOUNTS}/acc-1").route.id == "ais.accounts.get"


def test_a_method_the_literal_route_lacks_falls_through_to_the_parameter_route(policy):
    found = policy.match("DELETE", f"{ACCOUNTS}/summary")
    assert (found.route.id, dict(found.path_params)) == ("ais.accounts.delete", {"AccountId": "summary"})


def test_literal_priority_does_not_depend_on_declaration_order():
    literal, param = make_route("literal", "GET", "/a/{X}/c"), make_route("param", "GET", "/a/{X}/{Y}")
    for routes in ([literal, param], [param, literal]):
        assert Router(routes).match("GET", "/a/1/c").route.id == "literal"
        assert Router(routes).match("GET", "/a/1/d").route.id == "param"


def test_an_earlier_literal_segment_outranks_a_later_one():
    left, right = make_route("left", "GET", "/a/x/{Y}"), make_route("right", "GET", "/a/{X}/y")
    assert Router([right, left]).match("GET", "/a/x/y").route.id == "left"


def test_equally_specific_routes_keep_the_file_order():
    first, second = make_route("first", "GET", "/a/{X}"), make_route("second", "GET", "/a/{Y}")
    assert Router([first, second]).match("GET", "/a/1").route.id == "first"


@pytest.mark.parametrize("segment", ["..", "."])
def test_a_dot_segment_is_never_taken_as_a_parameter(policy, segment):
    assert policy.match("GET", f"{ACCOUNTS}/{segment}/transactions") is None


def test_path_params_cannot_be_changed(policy):
    found = policy.match("GET", f"{ACCOUNTS}/acc-1")
    with pytest.raises(TypeError):
        found.path_params["AccountId"] = "acc-2"  # type: ignore[index]
