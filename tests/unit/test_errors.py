import ast
import json
import re
from pathlib import Path

import orjson
import pytest

from gateway.cli.audit import REIDENTIFIED
from gateway.consents.notify import REASONS as NOTIFY_REASONS
from gateway.errors import (
    LISTED_ERROR_CODES,
    OAUTH_ERRORS,
    PAGE_REASONS,
    REASONS,
    REFUSAL_REASONS,
    Refusal,
    catalogued,
    namespaced,
    oauth_error_body,
    oauth_reason,
    ob_error_body,
)

SPECS = Path(__file__).resolve().parents[2] / "gateway/specs/ob-uk/v3.1.11"
APIS = ["account-info", "payment-initiation", "confirmation-funds", "vrp"]


def _codes(api: str) -> set[str]:
    spec = json.loads((SPECS / f"{api}-openapi.json").read_text())
    return set(spec["components"]["schemas"]["OBError1"]["properties"]["ErrorCode"]["x-namespaced-enum"])


OB_CODES = set().union(*map(_codes, APIS))


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_every_catalogued_refusal_renders_a_valid_ob_error(reason):
    body = orjson.loads(ob_error_body(Refusal(reason), "id-1"))
    assert set(body) == {"Code", "Id", "Message", "Errors"}
    assert body["Code"] == str(REASONS[reason].status) and body["Id"] == "id-1"
    # A UK OB code, or (only where UK OB defines none, as for 429) one in obgw's own namespace.
    code = body["Errors"][0]["ErrorCode"]
    assert code in OB_CODES or (code.startswith("OBGW.") and REASONS[reason].status == 429)
    assert 1 <= len(body["Message"]) <= 500


def test_the_listed_error_codes_are_exactly_the_v3_1_11_specs():
    assert OB_CODES == LISTED_ERROR_CODES
    assert all(_codes(api) <= LISTED_ERROR_CODES for api in APIS)


@pytest.mark.parametrize(("code", "shown"), [
    ("UK.OBIE.Field.Missing", "UK.OBIE.Field.Missing"),                      # listed: as it is
    ("UK.OBIE.Rules.InsufficientFunds", "OBGW.Rules.InsufficientFunds"),     # invented UK.OBIE.*: ours
    ("OBGW.Rules.RateLimitExceeded", "OBGW.Rules.RateLimitExceeded"),       # already ours
    ("ACME.NoMoney", "OBGW.Bank.ACME.NoMoney"),                              # a bank's own namespace
])
def test_an_unlisted_error_code_moves_into_obgws_namespace(code, shown):
    assert namespaced(code) == shown


def test_reason_ids_are_stage_dot_reason():
    for reason in REFUSAL_REASONS:
        stage, _, name = reason.partition(".")
        assert stage and name and reason == reason.lower()


def test_a_page_reason_is_a_customers_page_never_an_ob_error():
    assert not set(PAGE_REASONS) & set(REASONS)
    for reason, page in PAGE_REASONS.items():
        assert reason.startswith("web.") and 400 <= page.status < 500 and page.message.endswith(".")
        with pytest.raises(KeyError):
            Refusal(reason)  # it has no ErrorCode: ob_error_body could not render it


def test_only_a_catalogued_reason_is_accepted():
    assert REFUSAL_REASONS == set(REASONS) | set(PAGE_REASONS) | {oauth_reason(e) for e in (*OAUTH_ERRORS, "?")}
    for reason in REFUSAL_REASONS:
        assert catalogued(reason) == reason
    for typo in ("web.login_faild", "token.expire", "oauth.invalid_requests", "web", ""):
        with pytest.raises(KeyError):
            catalogued(typo)


def test_a_detail_message_replaces_the_catalogue_text_in_the_error_entry_only():
    refusal = Refusal("backend.error", "The bank's service answered 503.")
    body = orjson.loads(ob_error_body(refusal))
    assert body["Message"] == REASONS["backend.error"].message
    assert body["Errors"][0]["Message"] == "The bank's service answered 503."
    assert orjson.loads(oauth_error_body(refusal))["error_description"] == "The bank's service answered 503."


# -- every reason the gateway can audit is catalogued ----------------------------------------------------------------

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
REASON_ID = re.compile(r"[a-z]+\.[a-z][a-z0-9_]*")


def _reason_positions(trees: list[ast.Module]) -> dict[str, set[int]]:
    """Every callable of the gateway with a positional `reason` parameter, by the name it is called by (a class for
    its __init__), and where that argument stands (several, for two callables of one name: Call.refuse, refuse)."""
    found: dict[str, set[int]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                functions = [f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
                # A dataclass: its fields, in order, are its __init__'s parameters.
                fields = [f.target.id for f in node.body if isinstance(f, ast.AnnAssign)
                          and isinstance(f.target, ast.Name)]
                if not functions and "reason" in fields:
                    found.setdefault(node.name, set()).add(fields.index("reason"))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name != "__init__":
                functions = [node]
            else:
                continue
            for function in functions:
                positional = [a.arg for a in function.args.posonlyargs + function.args.args]
                if positional[:1] == ["self"]:
                    positional = positional[1:]
                if "reason" in positional:
                    found.setdefault(node.name, set()).add(positional.index("reason"))
    return found


def _constants(tree: ast.Module) -> dict[str, str]:
    """A module's names bound to a string at its top level (REIDENTIFIED = "audit.reidentified")."""
    return {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets if isinstance(target, ast.Name)}


def _reason_ids(expression: ast.AST, constants: dict[str, str]) -> set[str]:
    """The reason ids `expression` may stand for: its string constants and constant names, looking through `a or b`,
    `a if c else b` and tuples, but not into what a subscript or a call computes."""
    if isinstance(expression, ast.Subscript | ast.Call):
        return set()
    value = expression.value if isinstance(expression, ast.Constant) else constants.get(getattr(expression, "id", ""))
    found = {value} if isinstance(value, str) and REASON_ID.fullmatch(value) else set()
    for child in ast.iter_child_nodes(expression):
        found |= _reason_ids(child, constants)
    return found


def _named(target: ast.AST) -> list[str]:
    return [getattr(node, "id", None) or getattr(node, "attr", "") for node in ast.walk(target)]


def audited_reason_ids() -> dict[str, str]:
    """Every reason id the source hands on to be audited, with where: an argument bound to a `reason` parameter
    (Refusal, token_refusal, web.pages.refuse and error_page, TooManyAttempts, TokenRejected...), a value assigned to
    a name or attribute called `*reason*` or `*refusal*`, and every reason-like string in the Redis scripts."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in GATEWAY.rglob("*.py")
             if "sandbox" not in path.parts}
    takers = _reason_positions(list(trees.values()))
    found: dict[str, str] = {}
    for path, tree in trees.items():
        constants = _constants(tree)
        for node in ast.walk(tree):
            expressions = []
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                expressions += [k.value for k in node.keywords if k.arg == "reason"]
                expressions += [node.args[i] for i in takers.get(name, ()) if i < len(node.args)]
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any("reason" in name or "refusal" in name for t in targets for name in _named(t)):
                    expressions.append(node.value)
            for expression in expressions:
                for reason in _reason_ids(expression, constants):
                    found.setdefault(reason, f"{path.relative_to(GATEWAY)}:{node.lineno}")
    for script in (GATEWAY / "store" / "scripts").glob("*.lua"):
        for reason in re.findall(r"""['"]([a-z]+\.[a-z][a-z0-9_]*)['"]""", script.read_text(encoding="utf-8")):
            found.setdefault(reason, f"store/scripts/{script.name}")
    return found


def test_every_reason_the_gateway_can_audit_is_catalogued():
    found = audited_reason_ids()
    # The scan sees each way a reason is handed on (else it would pass by finding nothing).
    assert {"web.login_locked", "web.csrf_invalid", "request.malformed", "token.expired", "signature.invalid",
            "consent.not_found", "audit.reidentified"} <= set(found), sorted(found)
    # Besides refusals, a notification attempt (consents.notify.REASONS) and an operator's re-identifying search.
    audited = REFUSAL_REASONS | set(NOTIFY_REASONS) | {REIDENTIFIED}
    assert {reason: where for reason, where in found.items() if reason not in audited} == {}
    unused = (set(REASONS) | set(PAGE_REASONS)) - set(found)
    assert not unused, f"catalogued, but nothing refuses with them: {sorted(unused)}"
