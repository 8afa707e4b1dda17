"""A policy directory → one immutable PolicySet, or a PolicyError listing every problem at once.

Three passes, each over everything the previous one could read: load (YAML, positions), check the shape against
schema.py, then the named validators below, which relate keys and files to each other. Each validator's message
names both ends of the relation it checks. Only a policy without a single problem is compiled, once, at start.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway import specs
from gateway.policy.loader import (
    INVALID,
    Document,
    PolicyError,
    PolicyProblem,
    json_pointer,
    load_file,
)
from gateway.policy.model import (
    CONSENT_API_ROUTE_IDS,
    PRODUCT_OF_SCOPE,
    FieldRule,
    FieldSet,
    Limit,
    Plan,
    Plans,
    RateLimits,
    RecordIdentity,
    RoutePolicy,
    ServicePolicy,
    ServiceTLS,
    UnattendedPolicy,
    WindowPolicy,
    build_field_tree,
    path_parameters,
)
from gateway.policy.router import MethodNotAllowed, RouteMatch, Router
from gateway.policy.schema import FILES, check_document, http_url_problem


@functools.cache
def permission_codes() -> tuple[str, ...]:
    """The 21 UK Open Banking v3.1.11 permission codes."""
    return tuple(specs.permission_clusters()[specs.VERSION]["permissions"])


@functools.cache
def response_types() -> frozenset[str]:
    """The schema names of the vendored v3.1.11 APIs: the response (and request) types routes may declare. A name
    several APIs define is the first one's (`specs.api_of`), and its references resolve in that API."""
    return frozenset(name for api in specs.APIS for name in specs.openapi(api)["components"]["schemas"])


def _resolve(schema: Mapping[str, Any], api: str) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = specs.openapi(api)["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _properties(schema: Mapping[str, Any], api: str) -> dict[str, Any]:
    schema = _resolve(schema, api)
    found = dict(schema.get("properties", {}))
    for part in schema.get("allOf", ()):
        found.update(_properties(part, api))
    return found


def field_path_problem(response_type: str, path: str) -> str | None:
    """Why `path` is not a field of the response type in the v3.1.11 schemas (list markers included), or None."""
    api = specs.api_of(response_type)
    schema: Mapping[str, Any] = specs.openapi(api)["components"]["schemas"][response_type]
    parts = path.split(".")
    for position, part in enumerate(parts):
        name, listed = part.removesuffix("[]"), part.endswith("[]")
        properties = _properties(schema, api)
        if name not in properties:
            return f"{path!r} is not a field of {response_type} (v3.1.11)"
        schema = _resolve(properties[name], api)
        is_list = schema.get("type") == "array"
        if listed and not is_list:
            return f"{path!r}: {name} is not a list in {response_type} (v3.1.11); drop the []"
        if is_list and not listed and position < len(parts) - 1:
            return f"{path!r}: {name} is a list in {response_type} (v3.1.11); write {name}[]"
        if is_list:
            schema = _resolve(schema["items"], api)
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class PolicySet:
    """Everything the gateway enforces per route, compiled once; shared read-only by every request."""

    services: Mapping[str, ServicePolicy]  # read-only, by name
    routes: tuple[RoutePolicy, ...]  # in the order of routes.yaml
    router: Router
    fields: Mapping[str, FieldSet]  # field rules by response type
    unattended: UnattendedPolicy
    limits: RateLimits
    plans: Plans = dataclasses.field(default_factory=lambda: _default_plans(frozenset()))

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
    checked = _Checked(documents, values, service_urls, directory)
    for validator in VALIDATORS:
        problems += validator(checked)
    if problems:
        raise PolicyError(problems)
    return _compile(values, service_urls, directory)


def _file_hint(name: str, known: set[str]) -> str:
    return _did_you_mean(name, known) or f"a policy directory holds: {', '.join(sorted(known))}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Checked:
    """The shape-checked documents. What is absent or INVALID here has been reported already, so validators skip it."""

    documents: Mapping[str, Document]
    values: Mapping[str, Any]
    service_urls: Mapping[str, str]
    directory: Path = Path(".")

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

    def responses(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(response type, its field rules) for each valid entry of fields.yaml."""
        value = self.values.get("fields.yaml")
        responses = value.get("responses") if isinstance(value, dict) else None
        if isinstance(responses, dict):
            yield from ((name, spec) for name, spec in responses.items() if spec is not INVALID)

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


def _tls_file(directory: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else directory / path


def service_tls_files_load(policy: _Checked) -> Iterator[PolicyProblem]:
    """A service's `tls` is for an https URL; its client certificate comes with its key; every file loads."""
    services = policy.services()
    if services is None:
        return
    for name, service in services.items():
        if not isinstance(service, dict) or "tls" not in service or service["tls"] is INVALID:
            continue
        tls, loc = service["tls"], ("services", name, "tls")
        url = policy.service_urls.get(name, service.get("url", ""))
        if isinstance(url, str) and not url.startswith("https://"):
            yield policy.problem("services.yaml", loc, "tls needs an https:// url (this service's is not)",
                                 at_key=True)
            continue
        if ("cert_file" in tls) != ("key_file" in tls):
            yield policy.problem("services.yaml", loc, "cert_file and key_file go together", at_key=True)
            continue
        context = ssl.create_default_context()
        if "ca_file" in tls:
            try:
                context.load_verify_locations(_tls_file(policy.directory, tls["ca_file"]))
            except (OSError, ssl.SSLError) as exc:
                yield policy.problem("services.yaml", (*loc, "ca_file"), f"cannot load the CA file: {exc}")
        if "cert_file" in tls:
            try:
                context.load_cert_chain(_tls_file(policy.directory, tls["cert_file"]),
                                        _tls_file(policy.directory, tls["key_file"]))
            except (OSError, ssl.SSLError) as exc:
                yield policy.problem("services.yaml", (*loc, "cert_file"),
                                     f"cannot load the client certificate and key: {exc}")


def route_service_exists(policy: _Checked) -> Iterator[PolicyProblem]:
    services = policy.services()
    if services is None:
        return
    for index, route in policy.routes():
        name = route.get("service")
        if name is not None and name not in services:
            yield policy.problem("routes.yaml", ("routes", index, "service"),
                                 f"unknown service {name!r} ({_defined(services)})")


def plans_price_every_product(policy: _Checked) -> Iterator[PolicyProblem]:
    """plans.yaml: `default_plan` is a plan; every plan prices every product a route names (nothing is free by
    omission) and names no other (a typo would price nothing); free allowances and quotas only of those."""
    plans = policy.values.get("plans.yaml")
    if not isinstance(plans, dict) or not isinstance(plans.get("plans"), dict):
        return
    products = {_product(route) for _, route in policy.routes()}
    if "default_plan" in plans and plans["default_plan"] not in plans["plans"]:
        yield policy.problem("plans.yaml", ("default_plan",),
                             f"unknown plan {plans['default_plan']!r} (plans.yaml defines: "
                             f"{', '.join(sorted(plans['plans']))})")
    for name, plan in plans["plans"].items():
        if not isinstance(plan, dict):
            continue
        for section in ("prices", "free_calls", "quotas"):
            named = plan.get(section)
            if not isinstance(named, dict):
                continue
            for product in named:
                if product not in products:
                    hint = _did_you_mean(product, products)
                    yield policy.problem("plans.yaml", ("plans", name, section, product),
                                         f"no route is of product {product!r}" + (f" ({hint})" if hint else ""),
                                         at_key=True)
            if section == "prices":
                for product in sorted(products - set(named)):
                    yield policy.problem("plans.yaml", ("plans", name, "prices"),
                                         f"no price for product {product!r} (a route names it)", at_key=True)


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


def route_params_are_path_parameters(policy: _Checked) -> Iterator[PolicyProblem]:
    """`account_param` and `consent_param` each name a parameter of the route's path."""
    for index, route in policy.routes():
        for key in ("account_param", "consent_param"):
            param = route.get(key)
            if param is not None and "path" in route and param not in path_parameters(route["path"]):
                yield policy.problem("routes.yaml", ("routes", index, key), f"{param!r} is not a parameter of path "
                                     f"{route['path']!r} ({_parameters_of(route)})")


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


def _unknown_schema(kind: str, name: str) -> str:
    hint = _did_you_mean(name, response_types())
    return f"unknown {kind} {name!r} (not a schema of the vendored v3.1.11 APIs{'; ' + hint if hint else ''})"


def route_response_type_exists(policy: _Checked) -> Iterator[PolicyProblem]:
    known = response_types()
    for index, route in policy.routes():
        for key, kind in (("response_type", "response type"), ("request_type", "request type")):
            name = route.get(key)
            if name is not None and name not in known:
                yield policy.problem("routes.yaml", ("routes", index, key), _unknown_schema(kind, name))


def route_consent_field_is_a_request_field(policy: _Checked) -> Iterator[PolicyProblem]:
    """`consent_field` names a field of the body, so the body must have a schema that has it."""
    for index, route in policy.routes():
        field, request_type = route.get("consent_field"), route.get("request_type")
        if field is None:
            continue
        if request_type is None:
            yield policy.problem("routes.yaml", ("routes", index, "consent_field"),
                                 "consent_field needs a request_type (the schema of the body it is read from)")
        elif request_type in response_types() and (problem := field_path_problem(request_type, field)) is not None:
            yield policy.problem("routes.yaml", ("routes", index, "consent_field"), problem)


def _unknown_permission(code: str, codes: tuple[str, ...]) -> str:
    hint = _did_you_mean(code, codes) or f"not one of the {len(codes)} UK Open Banking v3.1.11 permission codes"
    return f"unknown permission {code!r} ({hint})"


def field_permissions_are_uk_codes(policy: _Checked) -> Iterator[PolicyProblem]:
    codes = permission_codes()
    for name, response in policy.responses():
        for index, rule in enumerate(response.get("fields", ())):
            if rule is INVALID:
                continue
            for position, code in enumerate(rule.get("permissions", ())):
                if code is not INVALID and code not in codes:
                    yield policy.problem("fields.yaml", ("responses", name, "fields", index, "permissions", position),
                                         _unknown_permission(code, codes))
        for direction in ("Credit", "Debit"):
            code = response.get("direction", {}).get(direction)
            if code is not None and code not in codes:
                yield policy.problem("fields.yaml", ("responses", name, "direction", direction),
                                     _unknown_permission(code, codes))


def field_paths_exist_in_the_schema(policy: _Checked) -> Iterator[PolicyProblem]:
    known = response_types()
    for name, response in policy.responses():
        loc = ("responses", name)
        if name not in known:
            yield policy.problem("fields.yaml", loc, _unknown_schema("response type", name), at_key=True)
            continue
        seen: dict[str, int] = {}
        for index, rule in enumerate(response.get("fields", ())):
            if rule is INVALID or "path" not in rule:
                continue
            # One field, however its list markers are written (a list may be named with or without its []).
            field = rule["path"].replace("[]", "")
            if (problem := field_path_problem(name, rule["path"])) is not None:
                yield policy.problem("fields.yaml", (*loc, "fields", index, "path"), problem)
            elif seen.setdefault(field, index) != index:
                yield policy.problem("fields.yaml", (*loc, "fields", index, "path"),
                                     f"{rule['path']!r} has a rule already (fields[{seen[field]}])")
        trace = response.get("trace")
        if isinstance(trace, dict) and "at" in trace:
            for index, field in enumerate(trace.get("identity", ())):
                if (problem := field_path_problem(name, f"{trace['at']}.{field}")) is not None:
                    yield policy.problem("fields.yaml", (*loc, "trace", "identity", index), problem)
        records = response.get("records")
        if records is None:
            continue
        if (problem := field_path_problem(name, records)) is not None:
            yield policy.problem("fields.yaml", (*loc, "records"), problem)
            continue
        for at, field in (((*loc, "account_field"), response.get("account_field")),
                          ((*loc, "direction", "field"), response.get("direction", {}).get("field")),
                          ((*loc, "window", "field"), response.get("window", {}).get("field")),
                          ((*loc, "window", "end_field"), response.get("window", {}).get("end_field"))):
            if field is not None and field_path_problem(name, f"{records}[].{field}") is not None:
                yield policy.problem("fields.yaml", at,
                                     f"{field!r} is not a field of the records {records}[] of {name} (v3.1.11)")


def responses_have_fields_or_a_file(policy: _Checked) -> Iterator[PolicyProblem]:
    """A response is cut by field rules, or passed whole as a file: one or the other; record filters need rules."""
    for name, response in policy.responses():
        if "file" not in response:
            if "fields" not in response:
                yield policy.problem("fields.yaml", ("responses", name), "needs fields (the rules of what may "
                                     "leave) or file (a document passed unmodified)", at_key=True)
            continue
        for key in ("fields", "records", "account_field", "direction", "window", "trace"):
            if key in response:
                yield policy.problem("fields.yaml", ("responses", name, key),
                                     f"a file is passed unmodified: {key} cannot apply to it", at_key=True)


def routes_have_field_rules(policy: _Checked) -> Iterator[PolicyProblem]:
    """Every route says what of its answer may leave: a response type without rules would let anything through, and
    only an explicit `pass_through` (never on consented data) leaves an answer uncut."""
    value = policy.values.get("fields.yaml")
    responses = value.get("responses") if isinstance(value, dict) else None
    # No fields.yaml: no rules at all. One that cannot be read (reported already): which types it defines is
    # unknown, so no route is said to lack rules.
    defined = set(responses) if isinstance(responses, dict) else (set() if "fields.yaml" not in policy.documents
                                                                  else None)
    routes = policy.documents.get("routes.yaml")
    for index, route in policy.routes():
        response_type, passed = route.get("response_type"), route.get("pass_through") is True
        written = routes is not None and json_pointer(("routes", index, "response_type")) in routes.key_positions
        if passed and written:
            yield policy.problem("routes.yaml", ("routes", index, "pass_through"),
                                 "a route has a response_type (its field rules) or pass_through, not both")
        elif passed and route.get("permissions"):
            yield policy.problem("routes.yaml", ("routes", index, "pass_through"),
                                 "a route with permissions reads consented data: it needs a response_type and its "
                                 "field rules, never pass_through")
        elif not written and not passed:
            also = "" if route.get("permissions") else " or pass_through: true"
            yield policy.problem("routes.yaml", ("routes", index), "needs a response_type (its field rules in "
                                 f"fields.yaml say what of the answer may leave){also}", at_key=True)
        if response_type is None or response_type not in response_types() or defined is None:
            continue  # reported above, by the schema check or by route_response_type_exists
        if response_type not in defined:
            yield policy.problem("routes.yaml", ("routes", index, "response_type"),
                                 f"fields.yaml has no rules for {response_type!r}: every route must say what of its "
                                 "answer may leave")


def _limits(policy: _Checked) -> dict[str, Any]:
    value = policy.values.get("limits.yaml")
    return value if isinstance(value, dict) else {}


def tiers_are_whole(policy: _Checked) -> Iterator[PolicyProblem]:
    for name, tier in _limits(policy).get("tiers", {}).items():
        if tier is INVALID:
            continue
        rated = {"rate_per_second", "burst"} & set(tier)
        if tier.get("unlimited") is True and rated:
            yield policy.problem("limits.yaml", ("tiers", name, "unlimited"),
                                 "an unlimited tier takes no rate_per_second or burst")
        elif tier.get("unlimited") is not True and rated != {"rate_per_second", "burst"}:
            yield policy.problem("limits.yaml", ("tiers", name), "a tier needs rate_per_second and burst "
                                 "(or unlimited: true)", at_key=True)


def limit_tiers_exist(policy: _Checked) -> Iterator[PolicyProblem]:
    limits = _limits(policy)
    document = policy.documents.get("limits.yaml")
    if "tiers" not in limits and document is not None and json_pointer(("tiers",)) in document.positions:
        return  # given but invalid: reported by the shape check, and no tier can be known to be missing
    tiers = limits.get("tiers", {})
    defined = f"limits.yaml defines: {', '.join(sorted(tiers))}" if tiers else "limits.yaml defines no tiers"
    if "default_tier" in limits and limits["default_tier"] not in tiers:
        yield policy.problem("limits.yaml", ("default_tier",), f"unknown tier {limits['default_tier']!r} ({defined})")
    for group, spec in limits.get("route_groups", {}).items():
        if spec is INVALID:
            continue
        for tier in spec.get("tiers", {}):
            if tier not in tiers:
                yield policy.problem("limits.yaml", ("route_groups", group, "tiers", tier),
                                     f"unknown tier {tier!r} ({defined})", at_key=True)


def route_group_routes_exist(policy: _Checked) -> Iterator[PolicyProblem]:
    known = {route["id"] for _, route in policy.routes() if "id" in route} | CONSENT_API_ROUTE_IDS
    first: dict[str, str] = {}
    for group, spec in _limits(policy).get("route_groups", {}).items():
        if spec is INVALID:
            continue
        for index, route_id in enumerate(spec.get("routes", ())):
            if route_id is INVALID:
                continue
            loc = ("route_groups", group, "routes", index)
            if route_id not in known:
                hint = _did_you_mean(route_id, known) or "not a route id of routes.yaml nor of the gateway's own API"
                yield policy.problem("limits.yaml", loc, f"unknown route {route_id!r} ({hint})")
            elif first.setdefault(route_id, group) != group:
                yield policy.problem("limits.yaml", loc, f"route {route_id!r} is in group {first[route_id]!r} "
                                     "already; a route has one bucket")


def payments_are_idempotent(policy: _Checked) -> Iterator[PolicyProblem]:
    """A call that uses a consent up moves money: a retry must never move it twice."""
    for index, route in policy.routes():
        for key in ("uses_consent", "control_parameters"):
            if route.get(key) and route.get("idempotency") != "required":
                yield policy.problem("routes.yaml", ("routes", index, key),
                                     f"a route with {key} needs idempotency: required")
            if route.get(key) and not (route.get("request_type") and route.get("consent_field")):
                yield policy.problem("routes.yaml", ("routes", index, key), f"a route with {key} needs a "
                                     "request_type and its consent_field (the payment is read from its body)")
        if route.get("attaches_file") and not route.get("uses_consent"):
            yield policy.problem("routes.yaml", ("routes", index, "attaches_file"),
                                 "attaches_file needs uses_consent (the file is its payment consent's)")


# Every rule that relates keys or files to each other, in the order they are run.
VALIDATORS: tuple[Callable[[_Checked], Iterator[PolicyProblem]], ...] = (
    service_url_overrides_name_services,
    service_tls_files_load,
    route_service_exists,
    plans_price_every_product,
    route_permissions_are_uk_codes,
    route_path_parameters_are_unique,
    route_params_are_path_parameters,
    route_upstream_path_uses_path_parameters,
    route_ids_are_unique,
    route_method_and_path_are_unique,
    route_response_type_exists,
    route_consent_field_is_a_request_field,
    field_permissions_are_uk_codes,
    field_paths_exist_in_the_schema,
    responses_have_fields_or_a_file,
    routes_have_field_rules,
    tiers_are_whole,
    limit_tiers_exist,
    route_group_routes_exist,
    payments_are_idempotent,
)


def _service_tls(directory: Path, tls: Mapping[str, str] | None) -> ServiceTLS | None:
    if tls is None:
        return None
    return ServiceTLS(*(_tls_file(directory, tls[key]).resolve() if key in tls else None
                        for key in ("ca_file", "cert_file", "key_file")))


def _compile(values: Mapping[str, Any], service_urls: Mapping[str, str], directory: Path = Path(".")) -> PolicySet:
    services = {
        name: ServicePolicy(name, service_urls.get(name, service["url"]).rstrip("/"), service["connect_timeout_ms"],
                            service["timeout_ms"], service["max_connections"],
                            service.get("max_concurrent", service["max_connections"]),
                            service["breaker"]["failures"], service["breaker"]["open_seconds"],
                            _service_tls(directory, service.get("tls")))
        for name, service in values["services.yaml"]["services"].items()
    }
    field_sets = {name: _field_set(name, response)
                  for name, response in values.get("fields.yaml", {}).get("responses", {}).items()}
    routes = tuple(
        RoutePolicy(
            id=route["id"], method=route["method"], path=route["path"], service=services[route["service"]],
            upstream_path=route.get("upstream_path", route["path"]), scope=route.get("scope"),
            permissions=frozenset(route.get("permissions", ())), account_param=route.get("account_param"),
            response_type=route.get("response_type"),
            timeout_ms=route.get("timeout_ms", services[route["service"]].timeout_ms),
            max_body_bytes=route["max_body_bytes"], selected_accounts_param=route.get("selected_accounts_param"),
            uses_consent=route["uses_consent"], allows_consumed=route["allows_consumed"],
            control_parameters=route["control_parameters"],
            idempotency_required=route.get("idempotency") == "required",
            signature_required=route.get("signature") == "required",
            fields=field_sets[route["response_type"]] if "response_type" in route else None,
            request_type=route.get("request_type"),
            consent_field=tuple(route["consent_field"].split(".")) if "consent_field" in route else None,
            debtor_account=route["debtor_account"],
            consent_param=route.get("consent_param"),
            attaches_file=route["attaches_file"],
            instructed_amount=route["instructed_amount"],
            product=_product(route),
        )
        for route in values["routes.yaml"]["routes"]
    )
    limits = values.get("limits.yaml") or _default_limits()
    unattended = limits["unattended"]
    plans = values.get("plans.yaml")
    return PolicySet(MappingProxyType(services), routes, Router(routes), MappingProxyType(field_sets),
                     UnattendedPolicy(unattended["calls"], unattended["window_seconds"]), _rate_limits(limits),
                     _plans(plans) if plans else _default_plans(frozenset(route.product for route in routes)))


def _product(route: Mapping[str, Any]) -> str:
    """The route's API product: its own `product`, else the one of its scope."""
    return str(route.get("product") or PRODUCT_OF_SCOPE.get(route.get("scope", ""), "accounts"))


def _plans(plans: Mapping[str, Any]) -> Plans:
    return Plans(MappingProxyType({
        name: Plan(name, plan["currency"], MappingProxyType(dict(plan["prices"])),
                   MappingProxyType(dict(plan["free_calls"])), MappingProxyType(dict(plan["quotas"])))
        for name, plan in plans["plans"].items()}), plans["default_plan"])


def _default_plans(products: frozenset[str]) -> Plans:
    """Without plans.yaml: one free plan, `standard`, no quotas (metering still counts every call)."""
    free = Plan("standard", "GBP", MappingProxyType(dict.fromkeys(products, "0")), MappingProxyType({}),
                MappingProxyType({}))
    return Plans(MappingProxyType({"standard": free}), "standard")


def _default_limits() -> dict[str, Any]:
    """limits.yaml's defaults, for a policy directory without one (the schema declares them once)."""
    spec = next(spec for spec in FILES if spec.name == "limits.yaml")
    return {key.name: key.default for key in spec.root.keys if key.default is not None}


def _rate_limits(limits: Mapping[str, Any]) -> RateLimits:
    def limit(spec: Mapping[str, Any]) -> Limit | None:
        return None if spec.get("unlimited") is True else Limit(spec["rate_per_second"], spec["burst"])
    groups = limits["route_groups"]
    return RateLimits(
        tiers=MappingProxyType({name: limit(tier) for name, tier in limits["tiers"].items()}),
        default_tier=limits["default_tier"],
        groups=MappingProxyType({g: MappingProxyType({t: limit(spec) for t, spec in group["tiers"].items()})
                                 for g, group in groups.items()}),
        group_of=MappingProxyType({route: g for g, group in groups.items() for route in group["routes"]}))


def _field_set(name: str, response: Mapping[str, Any]) -> FieldSet:
    rules = tuple(FieldRule(rule["path"], frozenset(rule.get("permissions", ())), rule.get("mask"),
                            rule.get("rewrite")) for rule in response.get("fields", ()))
    direction = response.get("direction")
    window = response.get("window")
    return FieldSet(
        response_type=name, root=build_field_tree(rules), rules=rules,
        records=tuple(response["records"].replace("[]", "").split(".")) if "records" in response else None,
        account_field=response.get("account_field"),
        direction=(direction["field"], MappingProxyType({"Credit": direction["Credit"], "Debit": direction["Debit"]}))
        if direction else None,
        window=WindowPolicy(window["field"], window["from_param"], window["to_param"], window.get("end_field"))
        if window else None,
        media_types=frozenset(response["file"]["media_types"]) if "file" in response else None,
        trace=RecordIdentity.of(response["trace"]["at"], response["trace"]["identity"]) if "trace" in response
        else None)
