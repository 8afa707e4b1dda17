"""Request bodies checked against the vendored UK Open Banking v3.1.11 OpenAPI schemas themselves.

The payment APIs' request schemas are large and precise (patterns, lengths, `additionalProperties: false`); the
gateway reads them instead of restating them. The documents are registered whole so `#/components/schemas/...`
references resolve; their schemas use no `nullable`, so JSON Schema draft 4 reads them as written.
"""
from __future__ import annotations

import functools

from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

from gateway import specs


@functools.cache
def _validator(api: str, schema: str) -> Draft4Validator:
    registry: Registry = Registry()
    for name in specs.APIS:
        registry = registry.with_resource(f"urn:ob:{name}", DRAFT4.create_resource(specs.openapi(name)))
    return Draft4Validator({"$ref": f"urn:ob:{api}#/components/schemas/{schema}"}, registry=registry)


def first_problem(body: object, schema: str, api: str = "pisp") -> tuple[str, str, bool] | None:
    """(path, message, missing?) of the first way `body` breaks `schema`, or None if it conforms.

    The path is in the UK OB `Path` style (`Data.Initiation.InstructedAmount.Amount`).
    """
    errors = sorted(_validator(api, schema).iter_errors(body), key=lambda e: (len(e.absolute_path), e.message))
    if not errors:
        return None
    error = errors[0]
    path = ".".join(str(part) for part in error.absolute_path) or "body"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        path = f"{path}.{missing}" if path != "body" else missing
        return path, f"{path} is required", True
    if error.validator == "additionalProperties":
        return path, f"{path}: {error.message}", False
    return path, f"{path} is not valid: {error.message}", False
