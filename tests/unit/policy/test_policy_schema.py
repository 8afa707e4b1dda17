from pathlib import Path

import pytest

from gateway.policy.loader import Document, load_file
from gateway.policy.schema import (
    FILES,
    PolicyFile,
    Record,
    check_document,
    render_reference,
)

README = Path(__file__).parents[3] / "policies" / "README.md"
KEYS = [row for spec in FILES for row in spec.root.rows("")]


def test_policies_readme_carries_the_reference_rendered_from_the_schema():
    # To regenerate: replace everything after the note under "## Key reference" with render_reference().
    assert render_reference() in README.read_text(encoding="utf-8")


def test_reference_lists_every_key_of_every_file():
    reference = render_reference()
    for spec in FILES:
        assert f"### `{spec.name}`" in reference
    for path, _ in KEYS:
        assert f"| `{path}` |" in reference


@pytest.mark.parametrize(("path", "key"), [(path, key) for path, key in KEYS if key.default is not None])
def test_every_declared_default_satisfies_its_own_constraint(path, key):
    spec = PolicyFile("x.yaml", True, "", Record("x", (key,)))
    document = Document("x.yaml", {key.name: key.default}, {"": (1, 1)}, {})
    assert check_document(document, spec) == ({key.name: key.default}, [])


def test_a_file_with_only_comments_is_reported_as_empty(tmp_path):
    (tmp_path / "services.yaml").write_text("# nothing yet\n")
    document, _ = load_file(tmp_path / "services.yaml")
    _, problems = check_document(document, FILES[0])
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'services.yaml'}:1:1: the file is empty; a policy file starts with format_version: 1"]
