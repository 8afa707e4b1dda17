"""The vendored UK Open Banking files (`ob-uk/`, see its SOURCE.md), read in one place and once per process.

The policy compiler (response types, permission codes), the request checks, the gateway's own OpenAPI document and
the tests read them here, so a file moved or a version added is one change. What is returned is shared by every
caller: read it, never change it.

Request bodies are checked against the schemas themselves (`first_problem`): they are large and precise (patterns,
lengths, `additionalProperties: false`), so the gateway reads them instead of restating them. The documents are
registered whole so `#/components/schemas/...` references resolve; their schemas use no `nullable`, so JSON Schema
draft 4 reads them as written.
"""
from __future__ import annotations

import functools
import importlib.resources
import json

from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

VERSION = "v3.1.11"  # the UK OB version the gateway speaks
_FILES = importlib.resources.files(__name__) / "ob-uk"
# The vendored APIs the gateway uses, by a short name (that of their base path, `/open-banking/v3.1/aisp`; the VRP
# API shares `/pisp` with the payment initiation API).
APIS = {"aisp": "account-info", "pisp": "payment-initiation", "cbpii": "confirmation-funds", "vrp": "vrp"}


@functools.cache
def openapi(api: str) -> dict:
    """The UK OB OpenAPI document of `api` (a key of APIS), as vendored."""
    return json.loads((_FILES / VERSION / f"{APIS[api]}-openapi.json").read_text(encoding="utf-8"))


@functools.cache
def api_of(schema: str) -> str:
    """The first vendored API (in APIS order) whose components define the schema `schema`."""
    return next(api for api in APIS if schema in openapi(api)["components"]["schemas"])


@functools.cache
def permission_clusters() -> dict:
    """`permission-clusters.json`: each version's permission codes, and the data each permission exposes."""
    return json.loads((_FILES / "permission-clusters.json").read_text(encoding="utf-8"))


@functools.cache
def _validator(api: str, schema: str) -> Draft4Validator:
    registry: Registry = Registry()
    for name in APIS:
        registry = registry.with_resource(f"urn:ob:{name}", DRAFT4.create_resource(openapi(name)))
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
        return path, f"{path} holds a field its schema does not define", False
    return path, f"{path} is not valid: {_rule(error.validator, error.validator_value)}", False


def _rule(validator: object, value: object) -> str:
    """What the value had to be, in words; never the value itself (the TPP sent it, and it may be anything)."""
    if validator == "maxLength":
        return f"at most {value} characters"
    if validator == "minLength":
        return f"at least {value} characters"
    if validator == "pattern":
        return f"it must match {value}"
    if validator == "enum" and isinstance(value, list):
        return f"one of {', '.join(map(str, value))}"[:200]
    if validator == "type":
        return f"it must be of type {value}"
    return f"it breaks the schema's {validator} rule"
