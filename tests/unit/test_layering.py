"""The package layering: a package imports only from its own layer or the ones below, so there is no import cycle
and what a module needs never pulls the hot path (or the whole gateway) in with it.

Only imports made at run time count: one under `if TYPE_CHECKING:` names a type for annotations and loads nothing.
"""
from __future__ import annotations

import ast
from pathlib import Path

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"

# Bottom to top. A unit is a sub-package of gateway (store, oauth, ...) or a module at its root (call, crypto, ...).
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(layer.split()) for layer in (
    # the floor: request-level types, errors, settings, helpers every package may use
    "__init__ errors settings state children json_body crypto call body client_address listener specs logs trace",
    "store pki",              # storage (Redis) and the dev PKI: nothing above them
    "policy",                 # the policy compiler
    "audit ratelimit usage",  # the audit log; a TPP's rate limits as the scripts take them; metering, statements
    "consents bank events",   # the consent model and API; the bank's customer endpoints; the Events API
    "oauth",                  # the authorization server
    "payments",               # payment checks, signatures, idempotency
    "pipeline web admin openapi_document",  # the listeners' stages, the customer pages, the admin pages
    "app",                    # the one wiring file
    "server cli __main__",    # processes and commands
))
LAYER = {unit: number for number, layer in enumerate(LAYERS) for unit in layer}


def _unit(module: str) -> str:
    """`gateway.store.names` → store; `gateway.call` → call; `gateway.__version__` (an attribute) → __init__."""
    parts = module.split(".")
    if len(parts) == 1 or not ((GATEWAY / parts[1]).is_dir() or (GATEWAY / f"{parts[1]}.py").exists()):
        return "__init__"
    return parts[1]


def _runtime_imports(tree: ast.AST) -> list[str]:
    """The gateway modules `tree` imports, leaving out `if TYPE_CHECKING:` blocks."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway"):
            found.extend(f"{node.module}.{a.name}" if node.module == "gateway" else node.module for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name.startswith("gateway"))
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(tree)
    return found


def _edges() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, file) for every run-time import between two units (the sandbox bank apart)."""
    edges = []
    for path in sorted(GATEWAY.rglob("*.py")):
        relative = path.relative_to(GATEWAY)
        source = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        if source == "sandbox":
            continue
        for module in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            target = _unit(module)
            if target != source and target != "sandbox":
                edges.append((source, target, str(relative)))
    return edges


def test_every_unit_has_a_layer():
    units = {p.name if p.is_dir() else p.stem for p in GATEWAY.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"} - {"sandbox"}
    assert units == set(LAYER), "add the new package or module to LAYERS"


def test_a_unit_imports_only_from_its_layer_or_below():
    upward = [f"{where}: {source} (layer {LAYER[source]}) imports {target} (layer {LAYER[target]})"
              for source, target, where in _edges() if LAYER[target] > LAYER[source]]
    assert not upward, "\n".join(upward)


def test_no_two_units_of_one_layer_import_each_other():
    edges = {(source, target) for source, target, _ in _edges()}
    assert not {(a, b) for a, b in edges if (b, a) in edges}
