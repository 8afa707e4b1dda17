"""The sandbox bank stands for a separate system: it must not import the rest of the gateway."""

from __future__ import annotations

import ast
from pathlib import Path

SANDBOX = Path(__file__).resolve().parents[3] / "gateway" / "sandbox"


def imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: use absolute imports"
            modules.append(node.module or "")
    return modules


def test_sandbox_imports_nothing_from_the_gateway_but_itself() -> None:
    files = sorted(SANDBOX.rglob("*.py"))
    assert len(files) >= 6
    offending = [
        f"{path.name}: {module}"
        for path in files
        for module in imported_modules(path)
        if (module == "gateway" or module.startswith("gateway.")) and not (
            module == "gateway.sandbox" or module.startswith("gateway.sandbox.")
        )
    ]
    assert offending == []
