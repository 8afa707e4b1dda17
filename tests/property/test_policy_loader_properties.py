"""Property tests of the policy loader: `load_policy` and `obgw policy check` on generated policy files.

For any file put in place of one of the shipped policy files - random YAML mappings, sequences and scalars with keys
near the real schema (services, routes, fields, tiers...), the shipped documents with random edits, raw YAML-ish
text and bytes - the loader either loads it or raises PolicyError whose every line is `file:line:col: message`, with
the line and column inside the file named; never another exception. `obgw policy check` says the same and exits 2
(or 0 and `ok:`). Valid mutations of the shipped policies (a tier's numbers, timeouts, limits within their bounds,
rules dropped or re-permissioned, debtor_account set, pass_through instead of a response type where no permission
is needed) still load, and the compiled policy holds the new values.

The generated text uses `\\n` line breaks only: YAML also breaks lines at CR, NEL, LS and PS, which editors do not
agree on, so "inside the file" would have no one meaning there.

Examples are derandomized (the same examples on every run, no example database), so CI is reproducible. The loader
bugs these properties found are kept at the end as regressions: YAML 1.1 timestamps that are not real dates, numbers
without digits, nesting deeper than Python's recursion limit (the first two are generated again too), and an invalid
`tiers` reported twice.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.policy import PolicyError, PolicySet, load_policy
from gateway.policy.compile import permission_codes
from gateway.policy.model import Limit

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "policies"
FILES = ("services.yaml", "routes.yaml", "fields.yaml", "limits.yaml")
ORIGINAL = {name: yaml.safe_load((SHIPPED / name).read_text(encoding="utf-8")) for name in FILES}

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PROBLEM_LINE = re.compile(r"(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<message>\S.*)")
WHOLE_FILE_LINE = re.compile(r"(?P<file>[^:]+): (?P<message>\S.*)")
SUMMARY = re.compile(r"\d+ errors? in \d+ files?")


class _NoAliases(yaml.SafeDumper):
    """Dump shared objects twice rather than as an anchor and an alias (which the loader rightly refuses)."""

    def ignore_aliases(self, data) -> bool:
        return True


def dump(value) -> str:
    return yaml.dump(value, Dumper=_NoAliases, sort_keys=False, allow_unicode=True)


@contextlib.contextmanager
def policy_dir(replaced: dict[str, str | bytes]):
    """A copy of the shipped policies with some files replaced (text or bytes), by file name."""
    with tempfile.TemporaryDirectory(prefix="obgw-policy-") as name:
        directory = Path(name)
        for file in FILES:
            shutil.copy(SHIPPED / file, directory / file)
        for file, content in replaced.items():
            target = directory / file
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        yield directory


# -- what a refusal must look like -----------------------------------------------------------------------------------

def file_lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def assert_points_inside_its_file(directory: Path, error: PolicyError) -> None:
    """Every problem names a policy file of the directory, at a line and column inside it; `str()` is the
    compiler-style report, one `file:line:col: ...` line per problem, then the count."""
    assert error.problems, "a PolicyError without problems"
    for problem in error.problems:
        path = Path(problem.file)
        assert path.parent == directory and path.name in FILES, problem
        assert problem.message and "\n" not in problem.message, problem
        lines = file_lines(path)
        assert 1 <= problem.line <= len(lines), (problem, len(lines))
        # Columns count characters (bytes, for text that is not UTF-8); the end of a line is a place too.
        line = lines[problem.line - 1]
        try:
            width = len(line.decode("utf-8"))
        except UnicodeDecodeError:
            width = len(line)
        assert 1 <= problem.col <= width + 1, (problem, line)
    *problem_lines, summary = str(error).splitlines()
    assert SUMMARY.fullmatch(summary), summary
    assert len(problem_lines) == len(error.problems)
    for text, problem in zip(problem_lines, error.problems):
        found = PROBLEM_LINE.fullmatch(text)
        assert found, text
        assert (found["file"], int(found["line"]), int(found["col"])) == (problem.file, problem.line, problem.col)


def policy_check(directory: Path) -> tuple[int, str]:
    """`obgw policy check DIR`, in process (its own argument parsing, settings and printing)."""
    from gateway.cli.policy import register

    parser = argparse.ArgumentParser(prog="obgw")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["policy", "check", str(directory)])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = args.func(args)
    return code, out.getvalue()


# -- generated documents ---------------------------------------------------------------------------------------------

SCHEMA_KEYS = (
    "format_version", "services", "routes", "responses", "tiers", "default_tier", "route_groups", "unattended",
    "url", "connect_timeout_ms", "timeout_ms", "max_connections", "max_concurrent", "breaker", "failures",
    "open_seconds", "id", "method", "path", "service", "upstream_path", "scope", "permissions", "account_param",
    "response_type", "max_body_bytes", "uses_consent", "allows_consumed", "idempotency", "signature",
    "selected_accounts_param", "pass_through", "request_type", "consent_field", "debtor_account", "records",
    "account_field", "direction", "window", "fields", "file", "media_types", "field", "end_field", "from_param",
    "to_param", "Credit",
    "Debit", "mask", "rewrite", "rate_per_second", "burst", "unlimited", "calls", "window_seconds", "standard",
    "premium", "accounts", "payments", "consent-creation", "OBReadAccount6", "OBReadBalance1", "OBReadTransaction6",
    "OBReadStatement2", "File", "OBFundsConfirmation1", "OBNothing", "AccountId",
)
KEYS = st.sampled_from(SCHEMA_KEYS) | st.text(max_size=6)
# Values near the schema's: in and out of every range, paths, templates, URLs, codes, field paths, YAML's own words.
NEAR_VALUES = st.sampled_from([
    0, 1, -1, 5, 60, 1000, 65_536, 10_485_761, 1_000_001, 2**63, 1.5, float("inf"), True, False, None, "",
    "GET", "get", "POST", "TRACE", "/", "/a/{X}", "/a/{X}/{X}", "/a/../b", "a/b", "/{1x}", "http://127.0.0.1:8081",
    "https://bank.example/base", "http://u:p@h", "ftp://h", "http://h:99999", "http://h?q=1", "accounts",
    "fundsconfirmations", "ReadBalances", "ReadPAN", "ReadAccountBasic", "Data.Account[].AccountId",
    "Data.Account.AccountId", "Data[]", "Data.Account[][].X", "Links.Self", "pan", "public_url", "public_link",
    "Data.ConsentId", "application/pdf", "application/PDF", "File", "required", "standard", "unlimited",
    "ais.consents.create", "ais.accounts.list", "OBReadAccount6", "OBFundsConfirmation1", "yes", "no", "~",
    "2025-01-31", "2025-01-31T10:00:00Z", "0x1F", "0o17", "1_000", "190:20:30", ".nan", "&a", "*a", "!!str",
])
SCALARS = NEAR_VALUES | st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                      max_leaves=25)


@st.composite
def near_schema_document(draw):
    """A mapping shaped like a policy file: format_version (usually right), top-level keys of the schema, junk."""
    document = {}
    if draw(st.integers(0, 4)):
        document["format_version"] = draw(st.just(1) | SCALARS)
    for key in draw(st.lists(st.sampled_from(SCHEMA_KEYS[:8]) | KEYS, min_size=1, max_size=3, unique=True)):
        document[key] = draw(VALUES)
    return document


def locations(value, loc=()):
    yield loc
    if isinstance(value, dict):
        for key, item in value.items():
            yield from locations(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from locations(item, (*loc, index))


@st.composite
def edited_shipped_document(draw, name: str):
    """A shipped policy file with one to three random edits: a value replaced, a key dropped or added, an item
    repeated - so that the later validators (services, permissions, field paths, tiers) meet the errors too."""
    document = copy.deepcopy(ORIGINAL[name])
    for _ in range(draw(st.integers(1, 3))):
        loc = draw(st.sampled_from(list(locations(document))))
        if not loc:
            continue
        *head, last = loc
        parent = document
        for part in head:
            parent = parent[part]
        edit = draw(st.sampled_from(["replace", "replace", "drop", "add", "repeat"]))
        if edit == "replace":
            parent[last] = draw(VALUES)
        elif edit == "drop":
            del parent[last]
        elif edit == "add" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
        elif edit == "repeat" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
    return document


TOKENS = st.sampled_from([*SCHEMA_KEYS, "- ", ":", ": ", "[", "]", "{", "}", ",", "&a ", "*a", "!!str ", "!x ", "? ",
                          "|", ">-", "'", '"', "#", "%YAML 1.1", "---", "...", "\t", "<<: ", "@", "`", "\\x",
                          "2025-01-31", "2025-02-30", "2025-13-01 25:00:00", "1_000", "0x1F", "0x_", "0b_", "1e400",
                          ".inf", "null"]) | st.text(max_size=4)


@st.composite
def yaml_ish_text(draw):
    """Lines of YAML-looking tokens at random indents: syntax errors, tabs, anchors, tags, flow collections..."""
    lines = []
    for _ in range(draw(st.integers(1, 10))):
        indent = " " * draw(st.sampled_from([0, 0, 2, 4, 1, 3, 6]))
        lines.append(indent + "".join(draw(st.lists(TOKENS, min_size=1, max_size=5))))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


# YAML line breaks other than \n (see the module docstring) become \n.
_OTHER_BREAKS = re.compile("[\r\x85\u2028\u2029]")


def newlines_only(text: str) -> str:
    return _OTHER_BREAKS.sub("\n", text)


def newlines_only_bytes(raw: bytes) -> bytes:
    return newlines_only(raw.decode("latin-1")).encode("latin-1")


@st.composite
def any_policy_text(draw, name: str):
    kind = draw(st.sampled_from(["near schema", "edited", "edited", "yaml-ish", "bytes"]))
    if kind == "near schema":
        return newlines_only(dump(draw(near_schema_document())))
    if kind == "edited":
        return newlines_only(dump(draw(edited_shipped_document(name))))
    if kind == "yaml-ish":
        return newlines_only(draw(yaml_ish_text()))
    return newlines_only_bytes(draw(st.binary(max_size=40)))


@st.composite
def replaced_file(draw):
    name = draw(st.sampled_from(FILES))
    return name, draw(any_policy_text(name))


# -- the properties ---------------------------------------------------------------------------------------------------

def test_the_shipped_policies_load():
    assert load_policy(SHIPPED).routes


@PROPERTY
@given(replaced_file())
def test_any_policy_file_loads_or_is_refused_with_positions_inside_the_file(case):
    name, content = case
    with policy_dir({name: content}) as directory:
        try:  # any exception but PolicyError fails the property
            policy = load_policy(directory)
        except PolicyError as error:
            assert_points_inside_its_file(directory, error)
        else:
            assert isinstance(policy, PolicySet), policy


@settings(PROPERTY, max_examples=40)
@given(replaced_file())
def test_obgw_policy_check_prints_the_same_report_and_exits_2_or_says_ok(case):
    name, content = case
    with policy_dir({name: content}) as directory:
        try:
            load_policy(directory)
        except PolicyError as error:
            expected = str(error)
        else:
            expected = None
        code, out = policy_check(directory)
    if expected is None:
        assert code == 0 and out.startswith("ok: "), out
    else:
        assert code == 2 and out == expected + "\n", out


# Valid mutations: every number within its bounds (schema.py), names that match their patterns.
TIER_NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)


@st.composite
def valid_limits(draw):
    limits = copy.deepcopy(ORIGINAL["limits.yaml"])
    tiers = limits["tiers"]
    for name, tier in tiers.items():
        if not tier.get("unlimited"):
            tier["rate_per_second"] = draw(st.integers(1, 1_000_000))
            tier["burst"] = draw(st.integers(1, 1_000_000))
    for name in draw(st.lists(TIER_NAMES.filter(lambda n: n not in tiers), max_size=2, unique=True)):
        tiers[name] = ({"unlimited": True} if draw(st.booleans()) else
                       {"rate_per_second": draw(st.integers(1, 1_000_000)), "burst": draw(st.integers(1, 1_000_000))})
    limits["default_tier"] = draw(st.sampled_from(sorted(tiers)))
    for group in limits["route_groups"].values():
        for tier in group["tiers"].values():
            tier["rate_per_second"] = draw(st.integers(1, 1_000_000))
            tier["burst"] = draw(st.integers(1, 1_000_000))
    limits["unattended"] = {"calls": draw(st.integers(1, 100_000)),
                            "window_seconds": draw(st.integers(60, 31_536_000))}
    return limits


@st.composite
def valid_services(draw):
    services = copy.deepcopy(ORIGINAL["services.yaml"])
    for service in services["services"].values():
        service["url"] = draw(st.sampled_from(["http", "https"])) + "://127.0.0.1:" + str(draw(st.integers(1, 65535))) \
            + draw(st.sampled_from(["", "/", "/bank", "/bank/v1"]))
        service["connect_timeout_ms"] = draw(st.integers(1, 60_000))
        service["timeout_ms"] = draw(st.integers(1, 300_000))
        service["max_connections"] = draw(st.integers(1, 10_000))
        service["max_concurrent"] = draw(st.integers(1, 10_000))
        service["breaker"] = {"failures": draw(st.integers(1, 1000)), "open_seconds": draw(st.integers(1, 3600))}
    return services


@st.composite
def valid_routes(draw):
    routes = copy.deepcopy(ORIGINAL["routes.yaml"])
    for route in routes["routes"]:
        if draw(st.booleans()):
            route["timeout_ms"] = draw(st.integers(1, 300_000))
        if draw(st.booleans()):
            route["max_body_bytes"] = draw(st.integers(0, 10_485_760))
        if "permissions" in route:
            route["permissions"] = draw(st.lists(st.sampled_from(permission_codes()), min_size=1, max_size=4,
                                                 unique=True))
        if draw(st.integers(0, 3)) == 0:
            route["debtor_account"] = draw(st.booleans())
        if "permissions" not in route and draw(st.integers(0, 3)) == 0:  # no consented data: may be passed as is
            del route["response_type"]
            route["pass_through"] = True
    routes["routes"] = draw(st.permutations(routes["routes"]))
    return routes


@st.composite
def valid_fields(draw):
    fields = copy.deepcopy(ORIGINAL["fields.yaml"])
    for response in fields["responses"].values():
        if "fields" not in response:
            continue  # a file: passed whole, no rules to drop or re-permission
        rules = draw(st.lists(st.sampled_from(range(len(response["fields"]))), min_size=1, unique=True))
        response["fields"] = [response["fields"][index] for index in sorted(rules)]
        for rule in response["fields"]:
            if draw(st.integers(0, 3)) == 0:
                rule.pop("permissions", None)
            elif draw(st.integers(0, 3)) == 0:
                rule["permissions"] = draw(st.lists(st.sampled_from(permission_codes()), min_size=1, max_size=3,
                                                    unique=True))
    return fields


@PROPERTY
@given(valid_limits(), valid_services(), valid_routes(), valid_fields())
def test_valid_mutations_of_the_shipped_policies_still_load_with_their_values(limits, services, routes, fields):
    with policy_dir({"limits.yaml": dump(limits), "services.yaml": dump(services), "routes.yaml": dump(routes),
                     "fields.yaml": dump(fields)}) as directory:
        try:
            policy = load_policy(directory)
        except PolicyError as error:  # pragma: no cover - the message is the point of a failure
            pytest.fail(f"a valid policy was refused:\n{error}")
    for name, tier in limits["tiers"].items():
        assert policy.limits.tiers[name] == (None if tier.get("unlimited") else
                                             Limit(tier["rate_per_second"], tier["burst"]))
    assert policy.limits.default_tier == limits["default_tier"]
    assert (policy.unattended.calls, policy.unattended.window_seconds) == (limits["unattended"]["calls"],
                                                                         limits["unattended"]["window_seconds"])
    for name, service in services["services"].items():
        compiled = policy.services[name]
        assert (compiled.url, compiled.connect_timeout_ms, compiled.timeout_ms, compiled.max_connections,
                compiled.max_concurrent, compiled.breaker_failures, compiled.breaker_open_seconds) == (
            service["url"].rstrip("/"), service["connect_timeout_ms"], service["timeout_ms"],
            service["max_connections"], service["max_concurrent"], service["breaker"]["failures"],
            service["breaker"]["open_seconds"])
    assert [route.id for route in policy.routes] == [route["id"] for route in routes["routes"]]
    for route, given_route in zip(policy.routes, routes["routes"]):
        assert route.timeout_ms == given_route.get("timeout_ms", services["services"][route.service.name]["timeout_ms"])
        assert route.max_body_bytes == given_route.get("max_body_bytes", 65_536)
        assert route.permissions == frozenset(given_route.get("permissions", ()))
        assert route.debtor_account == given_route.get("debtor_account", False)
        assert route.request_type == given_route.get("request_type")
        assert route.consent_field == (tuple(given_route["consent_field"].split("."))
                                       if "consent_field" in given_route else None)
        assert route.fields is policy.fields.get(given_route.get("response_type"))  # None: pass_through
    for name, response in fields["responses"].items():
        assert [rule.path for rule in policy.fields[name].rules] == [rule["path"]
                                                                     for rule in response.get("fields", ())]
        assert policy.fields[name].media_types == (frozenset(response["file"]["media_types"]) if "file" in response
                                                   else None)


# -- loader bugs these properties found (fixed, kept as regressions) -------------------------------------------------

@pytest.mark.parametrize("value", ["2025-13-01", "2025-02-30", "2025-01-31 25:00:00", "0x_", "0b_"],
                         ids=["month-13", "february-30", "hour-25", "hex-without-digits", "binary-without-digits"])
def test_a_scalar_yaml_cannot_build_is_a_policy_problem_not_a_crash(value):
    with policy_dir({"limits.yaml": f"format_version: 1\ndefault_tier: {value}\n"}) as directory:
        with pytest.raises(PolicyError) as refused:
            load_policy(directory)
        assert_points_inside_its_file(directory, refused.value)
        assert any(p.line == 2 for p in refused.value.problems)


@pytest.mark.parametrize("text", ["tiers: " + "[" * 1000 + "]" * 1000 + "\n",
                                  "tiers: " + "{a: " * 1000 + "}" * 1000 + "\n"],
                         ids=["flow-sequences-1000-deep", "flow-mappings-1000-deep"])
def test_deep_nesting_is_a_policy_problem_not_a_crash(text):
    with policy_dir({"limits.yaml": "format_version: 1\n" + text}) as directory:
        with pytest.raises(PolicyError) as refused:
            load_policy(directory)
        assert_points_inside_its_file(directory, refused.value)


def test_an_invalid_tiers_value_is_reported_once_not_again_as_an_unknown_default_tier():
    with policy_dir({"limits.yaml": "format_version: 1\ntiers: 3\n"}) as directory, \
            pytest.raises(PolicyError) as refused:
        load_policy(directory)
    assert [(p.line, p.path) for p in refused.value.problems] == [(2, "tiers")], str(refused.value)
