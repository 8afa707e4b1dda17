"""A policy directory → one immutable PolicySet, or a PolicyError listing every problem at once.

Three passes, each over everything the previous one could read: load (YAML, positions), check the shape against
schema.py, then the named validators below, which relate keys and files to each other. Each validator's message
names both ends of the relation it checks. Only a policy without a single problem is compiled, once, at start.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.resources
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.policy.loader import INVALID, Document, PolicyError, PolicyProblem, load_file
from gateway.policy.model import RoutePolicy, ServicePolicy, path_parameters
from gateway.policy.router import MethodNotAllowed, RouteMatch, Router
from gateway.policy.schema import FILES, check_document, http_url_problem

_SPECS = importlib.resources.files("gateway") / "specs" / "ob-uk"
# The vendored v3.1.11 APIs whose components.schemas name the response types routes may declare.
_RESPONSE_APIS = ("account-info", "payment-initiation")


@functools.cache
def permission_codes() -> tuple[str, ...]:
    """The 21 UK Open Banking v3.1.11 permission codes."""
    clusters = json.loads((_SPECS / "permission-clusters.json").read_text(encoding="utf-8"))
    return tuple(clusters["v3.1.11"]["permissions"])


@functools.cache
def response_types() -> frozenset[str]:
    names: set[str] = set()
    for api in _RESPONSE_APIS:
        spec = json.loads((_SPECS / "v3.1.11" / f"{api}-openapi.json").read_text(encoding="utf-8"))
        names.update(spec["components"]["schemas"])
    return frozenset(names)


@dataclasses.dataclass(frozen=True, slots=True)
class PolicySet:
    """Everything the gateway enforces per route, compiled once; shared read-only by every request."""

    services: Mapping[str, ServicePolicy]  # read-only, by name
    routes: tuple[RoutePolicy, ...]  # in the order of routes.yaml
    router: Router

    def match(self, method: str, path: str) -> RouteMatch | MethodNotAllowed | None:
        return self.router.match(method, path)


def load_policy(directory: Path, service_urls: Mapping[str, str] = MappingProxyType({})) -> PolicySet:
    """Read, check and compile the policy files in `directory`; `service_urls` replaces services' URLs by name.

    Raises PolicyError with every problem found. File names in messages are `directory / name` as given.
    """
    if not directory.is_dir():
        raise PolicyError([PolicyProblem(str(directory), 0, 0, "", "not a policy directory")])
    known = {spec.name for spec in FILES}
    present = {path.name for path in directory.iterdir() if path.suffix in (".yaml", ".yml")}
    problems = [PolicyProblem(str(directory / name), 0, 0, "", f"unknown policy file ({_file_hint(name, known)})")
                for name in sorted(present - known)]
    documents, values = {}, {}
    for spec in FILES:
        if spec.name not in present:
            if spec.required:
                problems.append(PolicyProblem(str(directory / spec.name), 0, 0, "", "required policy file is missing"))
            continue
        document, found = load_file(directory / spec.name)
        problems += found
        if document is not None:
            value, found = check_document(document, spec)
            problems += found
            documents[spec.name], values[spec.name] = document, value
    checked = _Checked(documents, values, service_urls)
    for validator in VALIDATORS:
        problems += validator(checked)
    if problems:
        raise PolicyError(problems)
    return _compile(values, service_urls)


def _file_hint(name: str, known: set[str]) -> str:
    return _did_you_mean(name, known) or f"a policy directory holds: {', '.join(sorted(known))}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Checked:
    """The shape-checked documents. What is absent or INVALID here has been reported already, so validators skip it."""

    documents: Mapping[str, Document]
    values: Mapping[str, Any]
    service_urls: Mapping[str, str]

    def services(self) -> dict[str, Any] | None:
        """The services by name (INVALID for a malformed one), or None if services.yaml could not be read."""
        value = self.values.get("services.yaml")
        services = value.get("services") if isinstance(value, dict) else None
        return services if isinstance(services, dict) else None

    def routes(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(index, route) for each route that is a mapping, its invalid keys left out."""
        value = self.values.get("routes.yaml")
        routes = value.get("routes") if isinstance(value, dict) else None
        if isinstance(routes, list):
            yield from ((index, route) for index, route in enumerate(routes) if route is not INVALID)

    def problem(self, file: str, loc: tuple[str | int, ...], message: str, *, at_key: bool = False) -> PolicyProblem:
        return self.documents[file].problem(loc, message, at_key=at_key)


def _defined(services: Mapping[str, Any]) -> str:
    return f"services.yaml defines: {', '.join(sorted(services))}" if services else "services.yaml defines no services"


def _did_you_mean(value: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, sorted(candidates), n=1)
    return f"did you mean {close[0]!r}?" if close else ""


def service_url_overrides_name_services(policy: _Checked) -> Iterator[PolicyProblem]:
    services = policy.services()
    if services is None:
        return
    for name, url in sorted(policy.service_urls.items()):
        if name not in services:
            yield policy.problem("services.yaml", ("services",),
                                 f"service URL override for unknown service {name!r} ({_defined(services)})",
                                 at_key=True)
        elif reason := http_url_problem(url):
            yield policy.problem("services.yaml", ("services", name, "url"),
                                 f"invalid override URL {url!r} for this service: {reason}")


def route_service_exists(policy: _Checked) -> Iterator[PolicyProblem]:
    services = policy.services()
    if services is None:
        return
    for index, route in policy.routes():
        name = route.get("service")
        if name is not None and name not in services:
            yield policy.problem("routes.yaml", ("routes", index, "service"),
                                 f"unknown service {name!r} ({_defined(services)})")


def route_permissions_are_uk_codes(policy: _Checked) -> Iterator[PolicyProblem]:
    codes = permission_codes()
    for index, route in policy.routes():
        for position, code in enumerate(route.get("permissions", ())):
            if code is not INVALID and code not in codes:
                hint = _did_you_mean(code, codes) or (
                    f"not one of the {len(codes)} UK Open Banking v3.1.11 permission codes")
                yield policy.problem("routes.yaml", ("routes", index, "permissions", position),
                                     f"unknown permission {code!r} ({hint})")


def route_path_parameters_are_unique(policy: _Checked) -> Iterator[PolicyProblem]:
    for index, route in policy.routes():
        for key in ("path", "upstream_path"):
            names = path_parameters(route.get(key, ""))
            for name in sorted({name for name in names if names.count(name) > 1}):
                yield policy.problem("routes.yaml", ("routes", index, key), f"parameter {{{name}}} appears twice")


def _parameters_of(route: dict[str, Any]) -> str:
    names = path_parameters(route["path"])
    return f"parameters: {', '.join(names)}" if names else "it has no parameters"


def route_account_param_is_path_parameter(policy: _Checked) -> Iterator[PolicyProblem]:
    for index, route in policy.routes():
        param = route.get("account_param")
        if param is not None and "path" in route and param not in path_parameters(route["path"]):
            yield policy.problem("routes.yaml", ("routes", index, "account_param"),
                                 f"{param!r} is not a parameter of path {route['path']!r} ({_parameters_of(route)})")


def route_upstream_path_uses_path_parameters(policy: _Checked) -> Iterator[PolicyProblem]:
    for index, route in policy.routes():
        if "upstream_path" not in route or "path" not in route:
            continue
        for name in dict.fromkeys(path_parameters(route["upstream_path"])):
            if name not in path_parameters(route["path"]):
                yield policy.problem("routes.yaml", ("routes", index, "upstream_path"),
                                     f"{{{name}}} is not a parameter of path {route['path']!r} "
                                     f"({_parameters_of(route)})")


def route_ids_are_unique(policy: _Checked) -> Iterator[PolicyProblem]:
    first: dict[str, int] = {}
    for index, route in policy.routes():
        if "id" in route:
            earlier = first.setdefault(route["id"], index)
            if earlier != index:
                yield policy.problem("routes.yaml", ("routes", index, "id"),
                                     f"duplicate route id {route['id']!r} {_first(policy, earlier, 'id')}")


def route_method_and_path_are_unique(policy: _Checked) -> Iterator[PolicyProblem]:
    # Templates that differ only in parameter names match the same requests, so they count as the same path.
    first: dict[tuple[str, str], int] = {}
    for index, route in policy.routes():
        if "method" in route and "path" in route:
            shape = "/".join("{}" if part.startswith("{") else part for part in route["path"].split("/"))
            earlier = first.setdefault((route["method"], shape), index)
            if earlier != index:
                yield policy.problem("routes.yaml", ("routes", index, "path"),
                                     f"duplicate route {route['method']} {route['path']} "
                                     f"{_first(policy, earlier, 'path')}")


def _first(policy: _Checked, index: int, key: str) -> str:
    line, _ = policy.documents["routes.yaml"].position(("routes", index, key))
    return f"(first defined by routes[{index}], line {line})"


def route_response_type_exists(policy: _Checked) -> Iterator[PolicyProblem]:
    known = response_types()
    for index, route in policy.routes():
        name = route.get("response_type")
        if name is not None and name not in known:
            hint = _did_you_mean(name, known)
            yield policy.problem("routes.yaml", ("routes", index, "response_type"),
                                 f"unknown response type {name!r} (not a schema of the v3.1.11 account-info or "
                                 f"payment-initiation API{'; ' + hint if hint else ''})")


# Every rule that relates keys or files to each other, in the order they are run.
VALIDATORS: tuple[Callable[[_Checked], Iterator[PolicyProblem]], ...] = (
    service_url_overrides_name_services,
    route_service_exists,
    route_permissions_are_uk_codes,
    route_path_parameters_are_unique,
    route_account_param_is_path_parameter,
    route_upstream_path_uses_path_parameters,
    route_ids_are_unique,
    route_method_and_path_are_unique,
    route_response_type_exists,
)


def _compile(values: Mapping[str, Any], service_urls: Mapping[str, str]) -> PolicySet:
    services = {
        name: ServicePolicy(name, service_urls.get(name, service["url"]).rstrip("/"), service["connect_timeout_ms"],
                            service["timeout_ms"], service["max_connections"])
        for name, service in values["services.yaml"]["services"].items()
    }
    routes = tuple(
        RoutePolicy(
            id=route["id"], method=route["method"], path=route["path"], service=services[route["service"]],
            upstream_path=route.get("upstream_path", route["path"]), scope=route.get("scope"),
            permissions=frozenset(route.get("permissions", ())), account_param=route.get("account_param"),
            response_type=route.get("response_type"),
            timeout_ms=route.get("timeout_ms", services[route["service"]].timeout_ms),
        )
        for route in values["routes.yaml"]["routes"]
    )
    return PolicySet(MappingProxyType(services), routes, Router(routes))
