"""Request documents, reshaped for a test."""
from __future__ import annotations


def without(document: dict, *path: str) -> dict:
    """`document` (changed in place, and returned) with the member at `path` removed: a required field missing."""
    node = document
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return document
