"""The policy format, declared once: every file and key with its type, default, constraint and description.

`FILES` is the whole format. `check_document` walks a loaded document against it and `render_reference` writes the
key reference in `policies/README.md` from it, so the checker and the documentation cannot disagree. A new policy
file or section is one more declaration here.

The checker is a small in-house one rather than jsonschema for two reasons. Its messages are ours, worded for a
policy author and pinned exactly by the golden tests (jsonschema's wording changes between releases and speaks of
schemas, not of routes). And a jsonschema document could not also carry the defaults, the plain-language constraints
and the descriptions the reference renders without a second, parallel declaration.

Shape only: rules that relate keys or files to each other (a route's service exists, permissions are UK codes)
are the named validators in `compile.py`; their constraints are still described here for the reference.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from gateway.policy.loader import (
    INVALID,
    Document,
    Loc,
    PolicyProblem,
    describe,
    plural,
)


class _Checker:
    """The document being checked and the problems found so far."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.problems: list[PolicyProblem] = []

    def report(self, loc: Loc, message: str, *, at_key: bool = False) -> Any:
        self.problems.append(self.document.problem(loc, message, at_key=at_key))
        return INVALID


class Type:
    """A kind of value. `check` returns the value to use, or INVALID after reporting why it cannot be used."""

    name = ""  # for the reference's Type column
    noun = ""  # for "expected <noun>, got ..."

    def check(self, value: Any, loc: Loc, checker: _Checker) -> Any:
        raise NotImplementedError

    def constraint(self) -> str:
        return ""

    def rows(self, prefix: str) -> Iterator[tuple[str, Key]]:
        """The keys nested inside this type, for the reference."""
        return iter(())


@dataclasses.dataclass(frozen=True)
class Key:
    name: str
    type: Type
    description: str
    required: bool = False
    default: Any = None
    default_text: str = ""  # for a default that is not a constant, e.g. "the route's path"


@dataclasses.dataclass(frozen=True)
class Integer(Type):
    minimum: int
    maximum: int
    name = "integer"
    noun = "an integer"

    def check(self, value: Any, loc: Loc, checker: _Checker) -> Any:
        if type(value) is not int:
            return checker.report(loc, f"expected {self.noun}, got {describe(value)}")
        if not self.minimum <= value <= self.maximum:
            return checker.report(loc, f"{value} is out of range {self.constraint()}")
        return value

    def constraint(self) -> str:
        return f"{self.minimum}..{self.maximum}"


@dataclasses.dataclass(frozen=True)
class Boolean(Type):
    name = "boolean"
    noun = "true or false"

    def check(self, value: Any, loc: Loc, checker: _Checker) -> Any:
        if type(value) is not bool:
            return checker.report(loc, f"expected {self.noun}, got {describe(value)}")
        return value

    def constraint(self) -> str:
        return "`true` or `false`"


@dataclasses.dataclass(frozen=True)
class Version(Type):
    """`format_version`: the one version of the format this code reads."""

    value: int
    name = "integer"
    noun = "an integer"

    def check(self, value: Any, loc: Loc, checker: _Checker) -> Any:
        if type(value) is not int:
            return checker.report(loc, f"expected {self.noun}, got {describe(value)}")
        if value != self.value:
            return checker.report(loc, f"unsupported format version {value} (this obgw reads {self.value})")
        return value

    def constraint(self) -> str:
        return f"`{self.value}`"


@dataclasses.dataclass(frozen=True)
class Text(Type):
    """A string; `label` and `rule` word both the error and the reference. `pattern` or `validate` enforce the rule."""

    label: str
    rule: str = ""
    pattern: str = ""
    validate: Callable[[str], str | None] | None = None  # returns why the value is invalid, or None
    name = "string"
    noun = "a string"

    def check(self, value: Any, loc: Loc, checker: _Checker) -> Any:
        if not isinstance(value, str):
            return checker.report(loc, f"expected {self.noun}, got {describe(value)}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            return checker.report(loc, f"invalid {self.label} {value!r}: {self.rule}")
        if self.validate and (reason := self.validate(value)):
            return checker.report(loc, f"invalid {self.label} {value!r}: {reason}")
        return value

    def constraint(self) -> str:
        return self.rule


@dataclasses.dataclass(frozen=True)
class OneOf(Type):
    options: tuple[str, ...]
    name = "string"
    noun = "a string"

    def check(self, value: Any, loc: Loc, checker: _Checker) -> Any:
        if not isinstance(value, str):
            return checker.report(loc, f"expected {self.noun}, got {describe(value)}")
        if value not in self.options:
            return checker.report(loc, f"{value!r} is not one of {', '.join(self.options)}")
        return value

    def constraint(self) -> str:
        return "one of " + ", ".join(f"`{option}`" for option in self.options)


@dataclasses.dataclass(frozen=True)
class ListOf(Type):
    """A list. Invalid items keep their place as INVALID, so later messages can still cite their index.

    `unique` compares items by value, so it suits lists of strings.
    """

    item: Type
    min_items: int = 0
    unique: bool = False
    noun = "a list"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"list of {self.item.name}"

    def check(self, value: Any, loc: Loc, checker: _Checker) -> Any:
        if not isinstance(value, list):
            return checker.report(loc, f"expected {self.noun}, got {describe(value)}")
        if len(value) < self.min_items:
            return checker.report(loc, f"must have at least {plural(self.min_items, 'item')}")
        items = [_check(self.item, item, (*loc, index), checker) for index, item in enumerate(value)]
        if self.unique:
            first: dict[Any, int] = {}
            for index, item in enumerate(items):
                if item is not INVALID and first.setdefault(item, index) != index:
                    items[index] = checker.report((*loc, index), f"{item!r} is listed twice (first as [{first[item]}])")
        return items

    def constraint(self) -> str:
        rules = [self.item.constraint(), f"at least {plural(self.min_items, 'item')}" if self.min_items else "",
                 "no repeats" if self.unique else ""]
        return "; ".join(rule for rule in rules if rule)

    def rows(self, prefix: str) -> Iterator[tuple[str, Key]]:
        return self.item.rows(f"{prefix}[]")


@dataclasses.dataclass(frozen=True)
class Record(Type):
    """A mapping with declared keys; unknown keys are errors. Absent or invalid keys are left out of the result."""

    title: str
    keys: tuple[Key, ...]
    noun = "a mapping"

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.title

    def check(self, value: Any, loc: Loc, checker: _Checker) -> Any:
        if not isinstance(value, dict):
            return checker.report(loc, f"expected {self.noun}, got {describe(value)}")
        known = {key.name: key for key in self.keys}
        for name in value:
            if name not in known:
                checker.report((*loc, name), _unknown_key(name, list(known)), at_key=True)
        result = {}
        for key in self.keys:
            if key.name in value:
                checked = _check(key.type, value[key.name], (*loc, key.name), checker)
                if checked is not INVALID:
                    result[key.name] = checked
            elif key.required:
                checker.report((*loc, key.name), "required key is missing")
            elif key.default is not None:
                result[key.name] = key.default
        return result

    def rows(self, prefix: str) -> Iterator[tuple[str, Key]]:
        for key in self.keys:
            path = f"{prefix}.{key.name}" if prefix else key.name
            yield path, key
            yield from key.type.rows(path)


@dataclasses.dataclass(frozen=True)
class MapOf(Type):
    """A mapping from names to values of one type. Invalid values keep their name, as INVALID."""

    key: Text
    value: Type
    placeholder: str
    noun = "a mapping"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"mapping of {self.placeholder} → {self.value.name}"

    def check(self, value: Any, loc: Loc, checker: _Checker) -> Any:
        if not isinstance(value, dict):
            return checker.report(loc, f"expected {self.noun}, got {describe(value)}")
        result = {}
        for name, item in value.items():
            if not re.fullmatch(self.key.pattern, name):
                checker.report((*loc, name), f"invalid {self.key.label} {name!r}: {self.key.rule}", at_key=True)
            else:
                result[name] = _check(self.value, item, (*loc, name), checker)
        return result

    def constraint(self) -> str:
        return f"{self.placeholder}: {self.key.rule}"

    def rows(self, prefix: str) -> Iterator[tuple[str, Key]]:
        return self.value.rows(f"{prefix}.<{self.placeholder}>")


def _check(type_: Type, value: Any, loc: Loc, checker: _Checker) -> Any:
    # A value the loader refused (alias, tag) has been reported already.
    return INVALID if value is INVALID else type_.check(value, loc, checker)


def _unknown_key(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown key (did you mean {close[0]!r}?)" if close else f"unknown key (allowed: {', '.join(known)})"


def http_url_problem(url: str) -> str | None:
    """Why `url` cannot be a service URL, or None. Shared with the `service_urls` overrides in compile.py."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    try:
        parts.port  # the property parses the port
    except ValueError:
        return "the port must be a number up to 65535"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if not parts.hostname:
        return "there is no host"
    if parts.username is not None or parts.password is not None:
        return "credentials do not belong in a URL"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "a service URL takes no query or fragment"
    return None


# A path template: absolute, whole segments, each literal (never a dot-segment) or one `{Name}` parameter.
# Starlette's syntax without convertors: every parameter is one non-empty segment, as router.py relies on.
_SEGMENT = r"(?:(?!\.\.?(?:/|$))[A-Za-z0-9._~!$&'()*+,;=:@-]+|\{[A-Za-z_][A-Za-z0-9_]*\})"
PATH_TEMPLATE = rf"/|(?:/{_SEGMENT})+"
_PATH_RULE = "must start with /; each segment literal or one {Name} parameter"
_TIMEOUT = Integer(1, 300_000)

_QUERY_PARAMETER = Text("query parameter", "must match [A-Za-z][A-Za-z0-9_]*", r"[A-Za-z][A-Za-z0-9_]*")
PRODUCT_NAME = r"[a-z][a-z0-9-]*"
_PERMISSION_CODE = Text("permission", "must be UK Open Banking v3.1.11 permission codes")
_FORMAT_VERSION = Key("format_version", Version(1), "Version of the policy format; every file states it.",
                      required=True)

SERVICE = Record("service", (
    Key("url", Text("URL", "must be http or https with a host; optional base path; no query",
                    validate=http_url_problem),
        "Base URL of the back-end. A route's upstream path is appended to it. "
        "Overridden by `OBGW_SERVICE_<NAME>_URL`.", required=True),
    Key("connect_timeout_ms", Integer(1, 60_000), "Time allowed to open a connection to the back-end.", default=1000),
    Key("timeout_ms", _TIMEOUT, "Total time allowed for the back-end's answer.", default=5000),
    Key("max_connections", Integer(1, 10_000), "Connection pool size to this back-end, per worker.", default=100),
    Key("max_concurrent", Integer(1, 10_000), "Calls in flight to this back-end per worker; one more is answered "
        "503 at once (with Retry-After) instead of queueing.", default_text="`max_connections`"),
    Key("breaker", Record("breaker", (
        Key("failures", Integer(1, 1000), "Consecutive failures (5xx, timeouts, refused connections) that open it.",
            default=5),
        Key("open_seconds", Integer(1, 3600), "How long it stays open (503 at once) before one probe call may try "
            "again (half-open).", default=10),
    )), "Circuit breaker, per worker.", default={"failures": 5, "open_seconds": 10}),
    Key("tls", Record("tls", (
        Key("ca_file", Text("file", "a PEM file, relative to the policy directory or absolute"),
            "CA bundle the back-end's certificate must chain to (its name is checked too).",
            default_text="the system's CA store"),
        Key("cert_file", Text("file", "a PEM file, relative to the policy directory or absolute"),
            "Client certificate (chain, PEM) the gateway presents to the back-end; needs `key_file`."),
        Key("key_file", Text("file", "a PEM file, relative to the policy directory or absolute"),
            "Private key (PEM, unencrypted) of `cert_file`."),
    )), "TLS to an `https` back-end: whom to trust and which client certificate to present. Files are read at "
        "start and on reload (SIGHUP); one that is missing or does not load stops the policy."),
))

# A field path: names joined by dots, `[]` after a name whose value is a list (its items follow).
FIELD_PATH = r"[A-Za-z][A-Za-z0-9]*(?:\[\])?(?:\.[A-Za-z][A-Za-z0-9]*(?:\[\])?)*"
_FIELD_PATH_RULE = "names joined by dots, [] after a list, e.g. Data.Account[].Nickname"
FIELD_PATH_NO_LISTS = r"[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*"
_FIELD_PATH_RULE_SHORT = "names joined by dots, e.g. Data.ConsentId"

ROUTE = Record("route", (
    Key("id", Text("route id", "must match [a-z0-9._-]+", r"[a-z0-9._-]+"),
        "Stable name of the route, used in audit records and metrics; unique.", required=True),
    Key("method", OneOf(("GET", "POST", "PUT", "PATCH", "DELETE")), "HTTP method.", required=True),
    Key("path", Text("path", _PATH_RULE, PATH_TEMPLATE),
        "Public path template; (method, path) is unique.", required=True),
    Key("service", Text("service name", "must be a service of services.yaml"), "Back-end that answers the route.",
        required=True),
    Key("upstream_path", Text("upstream path", _PATH_RULE + "; only parameters of path", PATH_TEMPLATE),
        "Path template on the back-end.", default_text="the route's `path`"),
    Key("scope", OneOf(("accounts", "payments", "fundsconfirmations")),
        "OAuth scope the access token needs; required (fail closed: without it any of the TPP's tokens would do).",
        required=True),
    Key("permissions", ListOf(_PERMISSION_CODE, min_items=1, unique=True),
        "The consent must grant at least one of these permissions."),
    Key("account_param", Text("account parameter", "must be a {Name} parameter of path"),
        "Path parameter naming the account; it must be one of the consent's selected accounts."),
    Key("response_type",
        Text("response type", "must be a schema of the vendored v3.1.11 APIs"),
        "UK Open Banking response schema of the answer, e.g. `OBReadAccount6`; fields.yaml must hold its rules "
        "(nothing leaves by omission). Every route has one, unless it says `pass_through`."),
    Key("pass_through", Boolean(), "`true`: the back-end's answer leaves as it is, unparsed: for a back-end that "
        "serves no UK OB data (no `response_type`); never on a route with `permissions`.", default=False),
    Key("timeout_ms", _TIMEOUT, "Total time allowed for the back-end's answer on this route.",
        default_text="the service's `timeout_ms`"),
    Key("max_body_bytes", Integer(0, 10_485_760), "Largest request body accepted on this route; more is 413.",
        default=65_536),
    Key("uses_consent", Boolean(), "`true`: the call uses its payment consent up: its Initiation and Risk must be "
        "the consent's exactly, one call at a time, and the consent is Consumed once the bank accepts it.",
        default=False),
    Key("control_parameters", Boolean(), "`true`: a VRP payment: its Initiation and Risk must be the consent's, and "
        "its amount must fit the consent's ControlParameters (checked by the gateway, atomically across workers); "
        "the consent stays usable for the next one.", default=False),
    Key("allows_consumed", Boolean(), "`true`: a Consumed payment consent still admits the call (reading the "
        "payment it made).", default=False),
    Key("idempotency", OneOf(("required",)), "`required`: the call needs `x-idempotency-key` (at most 40 "
        "characters); a retry with the same key and body gets the first answer, with another body a 400."),
    Key("signature", OneOf(("required",)), "`required`: the body is signed by the TPP (`x-jws-signature`, a "
        "detached JWS as UK OB v3.1.4+ defines it), verified with its registered keys."),
    Key("selected_accounts_param", _QUERY_PARAMETER,
        "Query parameter that tells the back-end the consent's selected accounts (list endpoints), so it fetches "
        "no others."),
    Key("request_type", Text("request type", "must be a schema of the vendored v3.1.11 APIs"),
        "UK Open Banking schema the request body must conform to (400 naming the field otherwise)."),
    Key("consent_field", Text("field path", _FIELD_PATH_RULE_SHORT, FIELD_PATH_NO_LISTS),
        "Field of the body (of `request_type`) that must name the access token's consent (else ConsentMismatch)."),
    Key("debtor_account", Boolean(), "`true`: the bank is told the consent's one account (a funds check's "
        "DebtorAccount), never one the TPP names.", default=False),
    Key("attaches_file", Boolean(), "`true`: a file payment: the body the bank gets carries the consent's uploaded "
        "file (a top-level `File`, its bytes in base64); needs `uses_consent`.", default=False),
    Key("consent_param", Text("consent parameter", "must be a {Name} parameter of path"),
        "Path parameter naming the access token's own consent (a sub-resource of the consent, such as its "
        "funds-confirmation); another consent's id is ConsentMismatch."),
    Key("instructed_amount", Boolean(), "`true`: the bank is told the consent's InstructedAmount "
        "(`x-bank-instructed-amount: <Amount> <Currency>`), as the customer authorised it: a payment consent's "
        "funds check.", default=False),
    Key("product", Text("product", "must match [a-z][a-z0-9-]*; priced by every plan of plans.yaml",
                        PRODUCT_NAME),
        "API product the call is metered and billed as (`obgw usage report`), e.g. `accounts`, `payments`, `vrp`, "
        "`funds-confirmation`; plans.yaml prices each one.",
        default_text="from `scope`: `accounts`, `payments`, or `funds-confirmation`"),
))

_PERMISSION = _PERMISSION_CODE

FIELD_RULE = Record("field rule", (
    Key("path", Text("field path", _FIELD_PATH_RULE, FIELD_PATH),
        "The field (and everything under it) this rule lets through; a field of the v3.1.11 response type.",
        required=True),
    Key("permissions", ListOf(_PERMISSION, min_items=1, unique=True),
        "Any one of these exposes the field; without the key, every consent that reaches the route does."),
    Key("mask", OneOf(("pan",)),
        "`pan`: a card number (its `SchemeName` is `UK.OBIE.PAN`, or absent) shows only its last 4 digits unless "
        "the consent grants `ReadPAN`."),
    Key("rewrite", OneOf(("public_url", "public_link")),
        "`public_url`: replaced by the URL the TPP called; `public_link`: the back-end's URL of a gateway route "
        "(paging: Links.Next...) as the gateway's URL of that route, dropped if it leads elsewhere. Never the "
        "back-end's."),
))

_RECORD_FIELD = Text("record field", "a field name of the record", r"[A-Za-z][A-Za-z0-9]*")
RESPONSE = Record("response", (
    Key("records", Text("records path", _FIELD_PATH_RULE, FIELD_PATH),
        "The list whose items are records (e.g. `Data.Transaction`): the record filters below apply to its items."),
    Key("account_field", _RECORD_FIELD, "Record field naming the account; records of accounts the customer did "
        "not select are dropped."),
    Key("direction", Record("direction", (
        Key("field", _RECORD_FIELD, "Record field holding `Credit` or `Debit`.", required=True),
        Key("Credit", _PERMISSION, "Permission that lets credit records through.", required=True),
        Key("Debit", _PERMISSION, "Permission that lets debit records through.", required=True),
    )), "Records are passed only in the directions the consent grants."),
    Key("window", Record("window", (
        Key("field", _RECORD_FIELD, "Record field with the record's date-time.", required=True),
        Key("end_field", _RECORD_FIELD, "Record field with the end of the record's period (a statement's "
            "EndDateTime): the whole period must lie inside the window."),
        Key("from_param", _QUERY_PARAMETER,
            "Query parameter asking the back-end for records from a date-time.", required=True),
        Key("to_param", _QUERY_PARAMETER,
            "Query parameter asking the back-end for records up to a date-time.", required=True),
    )), "The consent's TransactionFromDateTime..ToDateTime: asked of the back-end, and enforced on what it returns."),
    Key("trace", Record("trace", (
        Key("at", Text("record path", _FIELD_PATH_RULE, FIELD_PATH),
            "Where the records are: a list (`Data.Transaction[]`) or one object (`Data.Party`).", required=True),
        Key("identity", ListOf(_RECORD_FIELD, min_items=1, unique=True),
            "The record fields that together name the record (not its content), e.g. `[AccountId, TransactionId]`."
            , required=True),
    )), "Each record delivered is audited as a keyed fingerprint of its identity, so `obgw audit trace` can say "
        "which TPPs received a leaked record, even altered."),
    Key("fields", ListOf(FIELD_RULE, min_items=1), "What may leave: anything no rule allows is dropped. "
        "Either `fields` or `file`."),
    Key("file", Record("file", (
        Key("media_types", ListOf(Text("media type", "type/subtype", r"[a-z]+/[a-z0-9.+-]+"), min_items=1,
                                  unique=True), "The media types the answer may have.", required=True),
    )), "The answer is a document (a statement file) passed unmodified, never parsed, only in these media types. "
        "Either `fields` or `file`."),
))

_LIMIT = Record("limit", (
    Key("rate_per_second", Integer(1, 1_000_000), "Sustained calls per second.", required=True),
    Key("burst", Integer(1, 1_000_000), "Calls that may come at once, on top of nothing used (the quota `q`).",
        required=True),
))
_TIER_NAME = Text("tier name", "must match [a-z][a-z0-9_-]*", r"[a-z][a-z0-9_-]*")
_TIER = Record("tier", (
    Key("rate_per_second", Integer(1, 1_000_000), "Sustained calls per second."),
    Key("burst", Integer(1, 1_000_000), "Calls that may come at once (the quota `q` of RateLimit-Policy)."),
    Key("unlimited", Boolean(), "`true`: no rate limit at all (internal or test clients)."),
))
ROUTE_GROUP = Record("route group", (
    Key("routes", ListOf(Text("route id", "must be a route id of routes.yaml or of the gateway's own API"),
                         min_items=1, unique=True), "The routes that share this group's limits.", required=True),
    Key("tiers", MapOf(_TIER_NAME, _LIMIT, "tier"), "The group's limit for each tier; a tier not named here "
        "keeps its own limit.", required=True),
))

UNATTENDED = Record("unattended", (
    Key("calls", Integer(1, 100_000), "Calls a consent may make without the customer present, per window.",
        default=4),
    Key("window_seconds", Integer(60, 31_536_000), "The rolling window.", default=86_400),
))


_PRODUCT = Text("product", "must match [a-z][a-z0-9-]*; a product some route names", PRODUCT_NAME)
_MONEY = Text("amount", "a decimal string with at most 6 decimal places, e.g. \"0.0015\"",
              r"(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,6})?")
PLAN = Record("plan", (
    Key("currency", Text("currency", "ISO 4217 code, e.g. GBP", r"[A-Z]{3}"), "Currency of the plan's prices.",
        required=True),
    Key("prices", MapOf(_PRODUCT, _MONEY, "product"), "Price of one billable call (answered by the bank with 2xx) "
        "per product; every product a route names needs a price (`\"0\"`: free).", required=True),
    Key("free_calls", MapOf(_PRODUCT, Integer(0, 1_000_000_000), "product"), "Billable calls per product and UTC "
        "month that are not charged for (the free allowance).", default={}),
    Key("quotas", MapOf(_PRODUCT, Integer(1, 1_000_000_000), "product"), "Hard monthly quota of billable calls per "
        "product (UTC months): over it, 429 `OBGW.Rules.UsageQuotaExceeded` with `Retry-After` to the next month; "
        "refused calls are counted, never billed. No entry: no quota.", default={}),
))


@dataclasses.dataclass(frozen=True)
class PolicyFile:
    name: str
    required: bool
    description: str
    root: Record


FILES: tuple[PolicyFile, ...] = (
    PolicyFile("services.yaml", True, "The back-ends the gateway forwards to.", Record("services.yaml", (
        _FORMAT_VERSION,
        Key("services",
            MapOf(Text("service name", "must match [a-z][a-z0-9_-]*", r"[a-z][a-z0-9_-]*"), SERVICE, "name"),
            "Back-end services by name.", required=True),
    ))),
    PolicyFile("routes.yaml", True, "What the gateway answers: method and path → service, and what a call needs.",
               Record("routes.yaml", (
                   _FORMAT_VERSION,
                   Key("routes", ListOf(ROUTE), "The routes; a literal segment wins over a parameter.", required=True),
               ))),
    PolicyFile("fields.yaml", False,
               "What data may leave: per UK Open Banking response type, the fields each permission exposes (an "
               "allow-list) and the record filters, or a file's media types. Every route's `response_type` needs "
               "its entry here.",
               Record("fields.yaml", (
                   _FORMAT_VERSION,
                   Key("responses", MapOf(Text("response type", "must match [A-Z][A-Za-z0-9]*",
                                               r"[A-Z][A-Za-z0-9]*"),
                                          RESPONSE, "type"), "Field rules by response type.", required=True),
               ))),
    PolicyFile("limits.yaml", False, "Rate limits per TPP (tiers, route-group overrides) and the unattended "
               "allowance per consent.", Record("limits.yaml", (
        _FORMAT_VERSION,
        Key("tiers", MapOf(_TIER_NAME, _TIER, "tier"), "Rate-limit tiers by name: GCRA (a token bucket) per TPP, "
            "exact across workers. A client is on `default_tier` until `obgw clients set-tier` moves it.",
            default={"standard": {"rate_per_second": 20, "burst": 100}, "unlimited": {"unlimited": True}}),
        Key("default_tier", _TIER_NAME, "The tier of a client that has not been given one.", default="standard"),
        Key("route_groups", MapOf(Text("group name", "must match [a-z][a-z0-9_-]*", r"[a-z][a-z0-9_-]*"),
                                  ROUTE_GROUP, "group"),
            "Routes with limits of their own (e.g. consent creation tighter than reads), each group a bucket of "
            "its own; every other route shares the TPP's `default` bucket.", default={}),
        Key("unattended", UNATTENDED, "PSD2 RTS Art. 36(5): calls without the customer present (no "
            "`x-fapi-customer-ip-address`) per consent and rolling window; over it, 429.",
            default={"calls": 4, "window_seconds": 86_400}),
    ))),
    PolicyFile("plans.yaml", False, "Price plans: what each API product costs per billable call, the free "
               "allowance and hard quotas per UTC month. A client is on `default_plan` until `obgw clients "
               "set-plan` moves it.", Record("plans.yaml", (
        _FORMAT_VERSION,
        Key("default_plan", Text("plan name", "must be a plan below", r"[a-z][a-z0-9_-]*"),
            "The plan of a client that has not been given one.", default="standard"),
        Key("plans", MapOf(Text("plan name", "must match [a-z][a-z0-9_-]*", r"[a-z][a-z0-9_-]*"), PLAN, "plan"),
            "Plans by name.", required=True),
    ))),
)


def check_document(document: Document, spec: PolicyFile) -> tuple[Any, list[PolicyProblem]]:
    """The document's values with defaults filled in (INVALID where unusable), and the problems found."""
    checker = _Checker(document)
    if document.value is None:
        return checker.report((), "the file is empty; a policy file starts with format_version: 1"), checker.problems
    return _check(spec.root, document.value, (), checker), checker.problems


def render_reference() -> str:
    """The key reference of every policy file, in Markdown."""
    lines = []
    for spec in FILES:
        lines += [f"### `{spec.name}` ({'required' if spec.required else 'optional'})", "", spec.description, "",
                  "| Key | Type | Default | Constraint | Description |", "|---|---|---|---|---|"]
        for path, key in spec.root.rows(""):
            default = ("required" if key.required else f"`{key.default}`" if key.default is not None
                       else key.default_text or "none")
            cells = (f"`{path}`", key.type.name, default, key.type.constraint(), key.description)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)
