"""The compiled policy objects: immutable, built once at start by compile.py, shared by every request."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TypedDict
from urllib.parse import quote

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def path_parameters(template: str) -> list[str]:
    """The `{Name}` parameters of a path template, in order (repeats kept, so that they can be reported)."""
    return _PARAMETER.findall(template)


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceTLS:
    """TLS to an https back-end: the CA bundle its certificate must chain to (None: the system's), and the client
    certificate and key the gateway presents (None: none). Paths resolved against the policy directory."""
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ServicePolicy:
    name: str
    url: str  # no trailing slash; may end in a base path
    connect_timeout_ms: int
    timeout_ms: int
    max_connections: int
    max_concurrent: int = 100      # calls in flight per worker; one more is 503 at once
    breaker_failures: int = 5      # consecutive failures that open the circuit
    breaker_open_seconds: int = 10 # open for this long, then one probe (half-open)
    tls: ServiceTLS | None = None  # https only: the CA and client certificate (services.yaml `tls`)


@dataclasses.dataclass(frozen=True, slots=True)
class RoutePolicy:
    id: str
    method: str
    path: str
    service: ServicePolicy
    upstream_path: str
    scope: str | None
    permissions: frozenset[str]  # any one of them suffices; empty: no permission check
    account_param: str | None
    response_type: str | None    # None: `pass_through`, the answer leaves as it is
    timeout_ms: int  # effective: the route's own, else the service's
    max_body_bytes: int = 65_536
    uses_consent: bool = False                  # a payment: the consent is claimed, then Consumed
    control_parameters: bool = False            # a VRP payment: held to the consent's ControlParameters
    allows_consumed: bool = False               # reading a payment: its Consumed consent still admits
    idempotency_required: bool = False
    signature_required: bool = False
    selected_accounts_param: str | None = None  # query parameter naming the selected accounts to the back-end
    fields: FieldSet | None = None              # what of the answer may leave (None: pass_through)
    request_type: str | None = None             # the body must conform to this v3.1.11 schema
    consent_field: tuple[str, ...] | None = None  # ... and name the token's consent at this path
    debtor_account: bool = False                # the bank is told the consent's one account
    consent_param: str | None = None            # path parameter that must name the token's consent
    attaches_file: bool = False                 # a file payment: the consent's file goes to the bank with it
    instructed_amount: bool = False             # the bank is told the consent's InstructedAmount
    product: str = "accounts"                   # the API product it is metered and billed as (plans.yaml)

    @property
    def tells_debtor_account(self) -> bool:
        """The bank is told the consent's one account: a payment's, a VRP payment's, or where the route says so."""
        return self.uses_consent or self.control_parameters or self.debtor_account

    def upstream_target(self, path_params: Mapping[str, str]) -> str:
        """The absolute back-end URL for a call with these path parameters.

        Each value is quoted with no safe characters, so `/`, `?` and `#` inside a value stay inside its segment;
        a value that is itself a dot-segment (`.` or `..`) has its dots encoded, so that no URL normaliser between
        here and the back-end can resolve it to the parent path.
        """
        quoted = {name: _segment(value) for name, value in path_params.items()}
        return self.service.url + self.upstream_path.format_map(quoted)


def _segment(value: str) -> str:
    return value.replace(".", "%2E") if value in (".", "..") else quote(value, safe="")


@dataclasses.dataclass(frozen=True, slots=True)
class FieldRule:
    path: str
    permissions: frozenset[str]  # any one exposes the field; empty: every consent that reaches the route
    mask: str | None
    rewrite: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class FieldNode:
    """One name in the field tree; `rule` is None for a mere container of ruled fields."""
    rule: FieldRule | None
    children: Mapping[str, FieldNode]


@dataclasses.dataclass(frozen=True, slots=True)
class WindowPolicy:
    field: str
    from_param: str
    to_param: str
    end_field: str | None = None  # a record spanning a period (a statement) must end inside the window too


@dataclasses.dataclass(frozen=True, slots=True)
class RecordIdentity:
    """What names a delivered record (fields.yaml `trace`): where the records sit in an answer, whether that is a
    list, and the fields that identify one. `kind` (`Transaction`, `Party`) is the last name of the path, so two
    versions of a response type name their records alike."""
    path: tuple[str, ...]
    listed: bool
    fields: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.path[-1]

    @classmethod
    def of(cls, at: str, fields: list[str]) -> RecordIdentity:
        return cls(tuple(at.replace("[]", "").split(".")), at.endswith("[]"), tuple(fields))


@dataclasses.dataclass(frozen=True, slots=True)
class FieldSet:
    """What may leave for one UK OB response type: the field tree and the record filters."""
    response_type: str
    root: FieldNode
    rules: tuple[FieldRule, ...]           # in the order of fields.yaml (for `policy explain`)
    records: tuple[str, ...] | None        # path of the record list, e.g. ("Data", "Transaction")
    account_field: str | None
    direction: tuple[str, Mapping[str, str]] | None  # (field, {"Credit": permission, "Debit": permission})
    window: WindowPolicy | None
    media_types: frozenset[str] | None = None  # a file: passed unmodified in one of these types; no field rules
    trace: RecordIdentity | None = None        # what names each delivered record, for `obgw audit trace`


# A route's product when routes.yaml does not name one: by its OAuth scope.
PRODUCT_OF_SCOPE: Mapping[str, str] = MappingProxyType({
    "accounts": "accounts", "payments": "payments", "fundsconfirmations": "funds-confirmation"})


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One price plan (plans.yaml). Prices are Decimal strings, never floats: money is exact."""
    name: str
    currency: str
    prices: Mapping[str, str]      # product → price of one billable call
    free_calls: Mapping[str, int]  # product → billable calls per UTC month not charged for
    quotas: Mapping[str, int]      # product → hard monthly quota of billable calls (absent: none)


@dataclasses.dataclass(frozen=True, slots=True)
class Plans:
    plans: Mapping[str, Plan]
    default_plan: str

    def quota_args(self, product: str) -> str:
        """`plan quota;...` for one product, as admit.lua takes it (0: no quota on that plan)."""
        return ";".join(f"{name} {plan.quotas.get(product, 0)}" for name, plan in sorted(self.plans.items()))


@dataclasses.dataclass(frozen=True, slots=True)
class UnattendedPolicy:
    calls: int
    window_seconds: int


def field_names(path: str) -> list[str]:
    """`Data.Account[].Nickname` → ["Data", "Account", "Nickname"] (list markers are for readers and the checks)."""
    return [part.removesuffix("[]") for part in path.split(".")]


class _Branch(TypedDict):
    """A FieldNode while the tree is built."""
    rule: FieldRule | None
    children: dict[str, _Branch]


def build_field_tree(rules: tuple[FieldRule, ...]) -> FieldNode:
    """The rules as a tree of names; each rule sits on the node its path ends at."""
    tree: dict[str, _Branch] = {}
    for rule in rules:
        node = tree
        names = field_names(rule.path)
        for name in names[:-1]:
            node = node.setdefault(name, {"rule": None, "children": {}})["children"]
        node.setdefault(names[-1], {"rule": None, "children": {}})["rule"] = rule

    def freeze(children: dict[str, _Branch]) -> Mapping[str, FieldNode]:
        return MappingProxyType({name: FieldNode(entry["rule"], freeze(entry["children"]))
                                 for name, entry in children.items()})
    return FieldNode(None, freeze(tree))


# The consent API the gateway answers itself (consents/api.py), declared once: path → (token scope, {method: route
# id}). app.py wires it from here, the OpenAPI document describes it from here, and route groups in limits.yaml may
# name its route ids as they name those of routes.yaml.
ACCOUNT_ACCESS_CONSENTS = "/open-banking/v3.1/aisp/account-access-consents"
PAYMENT_CONSENTS = "/open-banking/v3.1/pisp/domestic-payment-consents"
FUNDS_CONFIRMATION_CONSENTS = "/open-banking/v3.1/cbpii/funds-confirmation-consents"
# Each payment kind's consent resource (by the kind's name in consents.model.Kind) and its route-id stem.
PAYMENT_CONSENT_PATHS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "domestic-payment": (PAYMENT_CONSENTS, "pis.consents"),
    "domestic-scheduled-payment": ("/open-banking/v3.1/pisp/domestic-scheduled-payment-consents",
                                   "pis.domestic_scheduled_consents"),
    "domestic-standing-order": ("/open-banking/v3.1/pisp/domestic-standing-order-consents",
                                "pis.domestic_standing_order_consents"),
    "international-payment": ("/open-banking/v3.1/pisp/international-payment-consents",
                              "pis.international_consents"),
    "international-scheduled-payment": ("/open-banking/v3.1/pisp/international-scheduled-payment-consents",
                                        "pis.international_scheduled_consents"),
    "international-standing-order": ("/open-banking/v3.1/pisp/international-standing-order-consents",
                                     "pis.international_standing_order_consents"),
    "domestic-vrp": ("/open-banking/v3.1/pisp/domestic-vrp-consents", "vrp.consents"),
    "file-payment": ("/open-banking/v3.1/pisp/file-payment-consents", "pis.file_consents"),
})
_REVOCABLE_PAYMENTS = frozenset({"domestic-vrp"})  # a VRP consent is long-lived: the TPP may DELETE it
_FILE_PAYMENTS = frozenset({"file-payment"})       # the TPP uploads the consent's file (POST) and reads it back (GET)
FILE_SUFFIX = "/{ConsentId}/file"


def _consent_api() -> Mapping[str, tuple[str, Mapping[str, str]]]:
    api: dict[str, tuple[str, Mapping[str, str]]] = {
        ACCOUNT_ACCESS_CONSENTS: ("accounts", MappingProxyType({"POST": "ais.consents.create"})),
        ACCOUNT_ACCESS_CONSENTS + "/{ConsentId}": ("accounts", MappingProxyType({
            "GET": "ais.consents.get", "DELETE": "ais.consents.delete"})),
        FUNDS_CONFIRMATION_CONSENTS: ("fundsconfirmations", MappingProxyType({"POST": "cbpii.consents.create"})),
        FUNDS_CONFIRMATION_CONSENTS + "/{ConsentId}": ("fundsconfirmations", MappingProxyType({
            "GET": "cbpii.consents.get", "DELETE": "cbpii.consents.delete"})),
    }
    for kind, (path, stem) in PAYMENT_CONSENT_PATHS.items():
        one = {"GET": f"{stem}.get", **({"DELETE": f"{stem}.delete"} if kind in _REVOCABLE_PAYMENTS else {})}
        api[path] = ("payments", MappingProxyType({"POST": f"{stem}.create"}))
        api[path + "/{ConsentId}"] = ("payments", MappingProxyType(one))
        if kind in _FILE_PAYMENTS:
            api[path + FILE_SUFFIX] = ("payments", MappingProxyType({"POST": f"{stem}.upload", "GET": f"{stem}.file"}))
    return MappingProxyType(api)


CONSENT_API = _consent_api()
CONSENT_API_ROUTE_IDS = frozenset(route_id for _, route_ids in CONSENT_API.values() for route_id in route_ids.values())
DEFAULT_GROUP = "default"


@dataclasses.dataclass(frozen=True, slots=True)
class Limit:
    rate_per_second: int
    burst: int

    @property
    def window_seconds(self) -> int:
        """RateLimit-Policy `w`: the time an empty bucket takes to fill to its whole quota again."""
        return max(1, -(-self.burst // self.rate_per_second))


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimits:
    tiers: Mapping[str, Limit | None]               # None: unlimited
    default_tier: str
    groups: Mapping[str, Mapping[str, Limit | None]]  # group → tier → the group's own limit
    group_of: Mapping[str, str]                     # route id → its group

    def for_route(self, route_id: str) -> tuple[str, Mapping[str, Limit | None]]:
        """(bucket group, tier → limit) that apply to a route: the group's limits over the tiers' own."""
        group = self.group_of.get(route_id, DEFAULT_GROUP)
        return group, self.for_route_group(group)

    def for_route_group(self, group: str) -> Mapping[str, Limit | None]:
        return MappingProxyType({**self.tiers, **self.groups.get(group, {})})
