"""Request bodies read as JSON, refusing a document that two parsers could read differently.

orjson keeps the last of an object's duplicate members; a bank (or a signature checker) that keeps the first would
read another document than the one the gateway checked: a payment to another payee, say. So a request body with a
member twice is refused. Request bodies are small and few next to the answers (which orjson alone reads), so the
extra pass with the standard parser, which sees every member, costs little.
"""
from __future__ import annotations

import json

import orjson


class InvalidJson(ValueError):
    """Not a JSON document the gateway accepts; the message says why."""


def _members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    document: dict[str, object] = {}
    for name, value in pairs:
        if name in document:
            raise InvalidJson(f"the member '{name}' appears twice in one object")
        document[name] = value
    return document


def loads_request(body: bytes) -> object:
    """The document (as orjson reads it), once no object in it has a member twice."""
    try:
        document = orjson.loads(body)  # refuses malformed and over-deep documents first
    except orjson.JSONDecodeError:
        raise InvalidJson("the body is not JSON") from None
    try:
        json.loads(body, object_pairs_hook=_members)
    except RecursionError:
        raise InvalidJson("the body is nested too deeply") from None
    return document
