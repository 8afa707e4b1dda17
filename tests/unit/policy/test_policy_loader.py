import pytest

from gateway.policy import PolicyError, PolicyProblem
from gateway.policy.loader import INVALID, display_path, json_pointer, load_file


def load(tmp_path, text, name="routes.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_file(path)


def messages(problems):
    return [(p.line, p.col, p.path, p.message) for p in problems]


def test_values_and_keys_keep_their_1_based_positions(tmp_path):
    document, problems = load(tmp_path, "format_version: 1\nroutes:\n  - id: a.b\n    method: GET\n")
    assert problems == []
    assert document.value == {"format_version": 1, "routes": [{"id": "a.b", "method": "GET"}]}
    assert document.positions["/format_version"] == (1, 17)
    assert document.positions["/routes/0"] == (3, 5)
    assert document.positions["/routes/0/method"] == (4, 13)
    assert document.key_positions["/routes/0/method"] == (4, 5)
    assert document.problem(("routes", 0, "method"), "m", at_key=True) == PolicyProblem(
        str(tmp_path / "routes.yaml"), 4, 5, "routes[0].method", "m")


def test_a_missing_value_is_placed_at_its_nearest_ancestor(tmp_path):
    document, _ = load(tmp_path, "format_version: 1\nroutes:\n  - id: a.b\n")
    assert document.position(("routes", 0, "service")) == (3, 5)


def test_a_duplicate_key_is_reported_and_the_first_value_kept(tmp_path):
    document, problems = load(tmp_path, "a: 1\nb: 2\na: 3\n")
    assert document.value == {"a": 1, "b": 2}
    assert messages(problems) == [(3, 1, "a", "duplicate key (first defined at line 1)")]


def test_anchors_and_aliases_are_refused_and_never_expanded(tmp_path):
    document, problems = load(tmp_path, "a: &x [1, 2]\nb: *x\n")
    assert document.value == {"a": [1, 2], "b": INVALID}
    assert messages(problems) == [(1, 4, "a", "anchors and aliases are not allowed in policies"),
                                  (2, 4, "b", "anchors and aliases are not allowed in policies")]


def test_a_recursive_alias_does_not_loop(tmp_path):
    document, problems = load(tmp_path, "a: &x [*x]\n")
    assert document.value == {"a": [INVALID]}
    assert len(problems) == 2


def test_explicit_tags_are_refused(tmp_path):
    document, problems = load(tmp_path, "a: !!str 5\nb: !!python/object:os.system x\n")
    assert document.value == {"a": INVALID, "b": INVALID}
    assert messages(problems) == [(1, 4, "a", "explicit tag '!!str' is not allowed in policies"),
                                  (2, 4, "b", "explicit tag '!!python/object:os.system' is not allowed in policies")]


def test_a_refusal_inside_a_skipped_duplicate_is_still_reported(tmp_path):
    _, problems = load(tmp_path, "a: 1\na: &x 2\n")
    assert messages(problems) == [(2, 1, "a", "duplicate key (first defined at line 1)"),
                                  (2, 4, "", "anchors and aliases are not allowed in policies")]


def test_keys_must_be_strings(tmp_path):
    document, problems = load(tmp_path, "services:\n  404: x\n  [a]: y\n")
    assert document.value == {"services": {}}
    assert messages(problems) == [(2, 3, "services", "keys must be strings, got integer 404"),
                                  (3, 3, "services", "keys must be strings, got a collection")]


def test_a_yaml_syntax_error_is_reported_at_its_mark(tmp_path):
    document, problems = load(tmp_path, "a: b: c\n")
    assert document is None
    assert messages(problems) == [(1, 5, "", "YAML syntax error: mapping values are not allowed here")]


def test_text_that_is_not_utf8_is_reported(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_bytes(b"a: 1\nb: \xff\n")
    document, problems = load_file(path)
    assert document is None
    assert messages(problems) == [(2, 4, "", "not UTF-8 text")]


def test_display_path_and_pointer_follow_the_location():
    assert display_path(("routes", 2, "permissions", 0)) == "routes[2].permissions[0]"
    assert display_path(("services", "a b", "url")) == 'services["a b"].url'
    assert json_pointer(("a/b", "c~d", 0)) == "/a~1b/c~0d/0"


@pytest.mark.parametrize(("count", "summary"), [(1, "1 error in 1 file"), (2, "2 errors in 1 file")])
def test_policy_error_counts_in_the_right_number(count, summary):
    problems = [PolicyProblem("p/routes.yaml", n + 1, 1, "routes", "bad") for n in range(count)]
    assert str(PolicyError(problems)).splitlines()[-1] == summary


def test_policy_error_sorts_by_file_line_and_column():
    error = PolicyError([
        PolicyProblem("p/services.yaml", 1, 1, "", "c"),
        PolicyProblem("p/routes.yaml", 10, 3, "routes[1]", "b"),
        PolicyProblem("p/routes.yaml", 2, 9, "routes[0].id", "a"),
        PolicyProblem("p/fields.yaml", 0, 0, "", "unknown policy file"),
    ])
    assert str(error) == "\n".join([
        "p/fields.yaml: unknown policy file",
        "p/routes.yaml:2:9: routes[0].id: a",
        "p/routes.yaml:10:3: routes[1]: b",
        "p/services.yaml:1:1: c",
        "4 errors in 3 files",
    ])
