"""The vendored UK OB files are read in one place (`gateway.specs`), once per process."""
from __future__ import annotations

import ast
from pathlib import Path

from gateway import specs

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"


def test_each_api_is_the_v3_1_11_document_of_its_base_path():
    for api in specs.APIS:
        document = specs.openapi(api)
        assert document["info"]["version"] == "3.1.11"
        base = "pisp" if api == "vrp" else api  # the VRP API shares the payment initiation API's base path
        assert document["servers"][0]["url"].endswith(f"/open-banking/v3.1/{base}")


def test_a_file_is_read_once():
    assert specs.openapi("aisp") is specs.openapi("aisp")
    assert specs.permission_clusters() is specs.permission_clusters()
    assert len(specs.permission_clusters()[specs.VERSION]["permissions"]) == 21


def test_no_other_module_opens_the_spec_files():
    """A module that names the vendored directory or one of its files reads them itself: it should ask `specs`."""
    names = ("ob-uk", "-openapi.", "permission-clusters")
    readers = sorted(str(path.relative_to(GATEWAY)) for path in GATEWAY.rglob("*.py")
                     if path.parent != GATEWAY / "specs"
                     and any(isinstance(node, ast.Constant) and isinstance(node.value, str)
                             and any(name in node.value for name in names)
                             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))))
    assert not readers
