"""Policy YAML → plain values plus the position of every value, so that each error names `file:line:col`.

PyYAML's constructor forgets positions and silently keeps the last of two duplicate keys, so a file is composed into
nodes (whose marks carry line and column) and converted here. Anchors, aliases and explicit tags are refused:
policies are plain data, and a reviewer must see every value where it takes effect. Every problem is collected;
none stops the reading of the rest of the file, except a YAML syntax error.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# Where a value sits in a document: mapping keys and sequence indices, outermost first; () is the whole document.
Loc = tuple[str | int, ...]

ANCHORS_REFUSED = "anchors and aliases are not allowed in policies"


class _Invalid:
    """The type of INVALID."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


# Stands in for a value already reported as a problem, so later checks skip it instead of reporting it again.
INVALID: Any = _Invalid()


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class PolicyProblem:
    """One error. `line` and `col` are 1-based; both are 0 when the problem is about a whole file or directory."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(Exception):
    """The policy cannot be used. `str()` is the compiler-style report: one line per problem, then a count."""

    def __init__(self, problems: Iterable[PolicyProblem]) -> None:
        self.problems: list[PolicyProblem] = sorted(problems)
        super().__init__(len(self.problems))

    def __str__(self) -> str:
        errors, files = len(self.problems), len({p.file for p in self.problems})
        summary = f"{plural(errors, 'error')} in {plural(files, 'file')}"
        return "\n".join([*map(str, self.problems), summary])


def plural(n: int, noun: str) -> str:
    """`1 error`, `2 errors`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    """A policy file as plain values, with the 1-based position of each value and mapping key by JSON pointer."""

    file: str
    value: Any
    positions: Mapping[str, tuple[int, int]]
    key_positions: Mapping[str, tuple[int, int]]

    def position(self, loc: Loc, *, at_key: bool = False) -> tuple[int, int]:
        """Where `loc` is written: its key (if asked and it has one), else its value, else its nearest ancestor."""
        if at_key and (found := self.key_positions.get(json_pointer(loc))):
            return found
        while (found := self.positions.get(json_pointer(loc))) is None:
            loc = loc[:-1]
        return found

    def problem(self, loc: Loc, message: str, *, at_key: bool = False) -> PolicyProblem:
        line, col = self.position(loc, at_key=at_key)
        return PolicyProblem(self.file, line, col, display_path(loc), message)


def json_pointer(loc: Loc) -> str:
    """RFC 6901 pointer for `loc`."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def display_path(loc: Loc) -> str:
    """`loc` as a reader writes it: `routes[2].service`, `services.accounts.url`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def load_file(path: Path) -> tuple[Document | None, list[PolicyProblem]]:
    """Read one policy file. The document is None only when the file cannot be read or is not YAML at all."""
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [PolicyProblem(file, 0, 0, "", f"cannot read: {exc.strerror}")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(data, exc.start, b"\n")
        return None, [PolicyProblem(file, line, col, "", "not UTF-8 text")]
    try:
        loader = _Composer(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_problem(file, exc)]
    except RecursionError:  # the composer recurses once per level: a policy is never this deep
        return None, [PolicyProblem(file, 1, 1, "", "nested too deeply")]
    except yaml.reader.ReaderError as exc:
        line, col = _line_col(text, exc.position, "\n")
        return None, [PolicyProblem(file, line, col, "", f"unacceptable character #x{exc.character:04x}")]
    converter = _Converter(file, loader.refusals)
    try:
        value = converter.convert(root, ()) if root is not None else None
    except RecursionError:
        return None, [PolicyProblem(file, 1, 1, "", "nested too deeply")]
    converter.positions.setdefault("", (1, 1))
    # Refusals inside a subtree that was itself refused or skipped are still reported, without a path.
    unvisited = [_at(file, node.start_mark, message)
                 for node, messages in converter.refusals.values() for message in messages]
    return Document(file, value, converter.positions, converter.key_positions), converter.problems + unvisited


def _line_col(text: str | bytes, offset: int, newline: Any) -> tuple[int, int]:
    line_start = text.rfind(newline, 0, offset) + 1
    return text.count(newline, 0, offset) + 1, offset - line_start + 1


def _position(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _at(file: str, mark: yaml.Mark, message: str, path: str = "") -> PolicyProblem:
    return PolicyProblem(file, *_position(mark), path, message)


def _syntax_problem(file: str, exc: yaml.MarkedYAMLError) -> PolicyProblem:
    mark = exc.problem_mark or exc.context_mark
    context = exc.context and (f"{exc.context} (line {exc.context_mark.line + 1})" if exc.context_mark else exc.context)
    message = "YAML syntax error: " + ", ".join(part for part in (context, exc.problem) if part)
    return _at(file, mark, message) if mark else PolicyProblem(file, 1, 1, "", message)


def _start(event: yaml.Event) -> yaml.Mark:
    """Where `event` starts: the pure-Python parser gives every event a yaml.Mark (LibYAML's, unused here, has its
    own type)."""
    mark = event.start_mark
    assert isinstance(mark, yaml.Mark)
    return mark


class _Refused(yaml.ScalarNode):
    """Takes the place of an alias or an explicitly tagged node; the refusal has been noted."""

    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__("tag:yaml.org,2002:null", "", mark, mark)


class _Composer(yaml.SafeLoader):
    """A SafeLoader that notes and refuses anchors, aliases and explicit tags instead of resolving them.

    Anchors are never registered, so no alias can make the document recursive or repeat a subtree.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.refusals: list[tuple[yaml.Node, str]] = []  # the node keeps its id unique while listed here

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # Called at a node's first event; types-PyYAML leaves peek_event and get_event unannotated.
        event: yaml.AliasEvent | yaml.ScalarEvent | yaml.CollectionStartEvent
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self.get_event()  # type: ignore[no-untyped-call]
            node: yaml.Node = _Refused(_start(event))
            self.refusals.append((node, ANCHORS_REFUSED))
            return node
        self.descend_resolver(parent, index)
        # types-PyYAML types `anchor` as the anchors' dict; PyYAML takes the anchor's name, or None (not registered).
        if isinstance(event, yaml.ScalarEvent):
            node = self.compose_scalar_node(None)  # type: ignore[arg-type]
        elif isinstance(event, yaml.SequenceStartEvent):
            node = self.compose_sequence_node(None)  # type: ignore[arg-type]
        else:
            node = self.compose_mapping_node(None)  # type: ignore[arg-type]
        self.ascend_resolver()
        if event.tag is not None:
            node = _Refused(_start(event))
            tag = event.tag.replace("tag:yaml.org,2002:", "!!", 1)
            self.refusals.append((node, f"explicit tag {tag!r} is not allowed in policies"))
        if event.anchor is not None:
            self.refusals.append((node, ANCHORS_REFUSED))
        return node


# The implicit scalar types of YAML 1.1 that become Python values; any other resolved tag stays a string.
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp"))


class _Converter:
    """Nodes → plain values, recording positions and refusing duplicate and non-string keys."""

    def __init__(self, file: str, refusals: list[tuple[yaml.Node, str]]) -> None:
        self.file = file
        self.refusals: dict[int, tuple[yaml.Node, list[str]]] = {}
        for node, message in refusals:
            self.refusals.setdefault(id(node), (node, []))[1].append(message)
        self.positions: dict[str, tuple[int, int]] = {}
        self.key_positions: dict[str, tuple[int, int]] = {}
        self.problems: list[PolicyProblem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def _report_refusals(self, node: yaml.Node, loc: Loc) -> None:
        _, messages = self.refusals.pop(id(node), (node, []))
        self.problems += [_at(self.file, node.start_mark, message, display_path(loc)) for message in messages]

    def convert(self, node: yaml.Node, loc: Loc) -> Any:
        self.positions[json_pointer(loc)] = _position(node.start_mark)
        self._report_refusals(node, loc)
        if isinstance(node, _Refused):
            return INVALID
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        return [self.convert(item, (*loc, index)) for index, item in enumerate(node.value)]  # a SequenceNode

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag in _SCALAR_TAGS:
            try:
                return self._constructor.yaml_constructors[node.tag](self._constructor, node)
            except ValueError:  # it looks like a date or a number but is none (2025-02-30, 0x_): said at its place
                self.problems.append(_at(self.file, node.start_mark, f"{node.value!r} is not a valid "
                                                                     f"{node.tag.rsplit(':', 1)[-1]}", ""))
                return INVALID
        return node.value

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, _Refused):
                self._report_refusals(key_node, loc)
                continue
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else INVALID
            if not isinstance(key, str):
                got = "a collection" if key is INVALID else describe(key)
                self.problems.append(_at(self.file, key_node.start_mark, f"keys must be strings, got {got}",
                                         display_path(loc)))
                continue
            child = (*loc, key)
            pointer = json_pointer(child)
            if key in result:
                first_line = self.key_positions[pointer][0]
                self.problems.append(_at(self.file, key_node.start_mark,
                                         f"duplicate key (first defined at line {first_line})", display_path(child)))
                continue
            self.key_positions[pointer] = _position(key_node.start_mark)
            self._report_refusals(key_node, child)
            result[key] = self.convert(value_node, child)
        return result


def describe(value: Any) -> str:
    """A value as an error message shows what was found: `string '5s'`, `integer 0`, `a list`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"timestamp {value.isoformat()}"
