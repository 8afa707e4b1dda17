"""assert_conforms(body, "OBReadAccount6"): a body validates against the vendored UK OB v3.1.11 OpenAPI schemas.

The OpenAPI 3.0 documents are registered whole so `#/components/schemas/...` references resolve; their schemas
use no `nullable`, so JSON Schema draft 4 reads them as written. Draft 4 does not check `format`, so date-times are
checked here: ISO 8601 with a zone.
"""
from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path

from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

from gateway.specs import APIS, VERSION

SPECS = Path(__file__).resolve().parents[2] / "gateway" / "specs" / "ob-uk" / VERSION
SPEC_FILES = {api: f"{name}-openapi.json" for api, name in APIS.items()}


@functools.cache
def _registry() -> Registry:
    registry: Registry = Registry()
    for api, name in SPEC_FILES.items():
        document = json.loads((SPECS / name).read_text())
        registry = registry.with_resource(f"urn:ob:{api}", DRAFT4.create_resource(document))
    return registry


@functools.cache
def _validator(api: str, schema: str) -> Draft4Validator:
    return Draft4Validator({"$ref": f"urn:ob:{api}#/components/schemas/{schema}"}, registry=_registry())


def assert_conforms(body: object, schema: str, api: str = "aisp") -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(api, schema).iter_errors(body)]
    assert not errors, "\n".join(errors[:10])
    _check_datetimes(body)


def assert_ok(response, schema: str, api: str = "aisp") -> dict:
    """A 200 whose body conforms to `schema`; the body."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert_conforms(body, schema, api)
    return body


def assert_refused(response, status: int, code: str) -> dict:
    """An OBErrorResponse1 with this status and first ErrorCode; the body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert_conforms(body, "OBErrorResponse1")
    assert body["Errors"][0]["ErrorCode"] == code, body
    return body


def _check_datetimes(node: object) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("DateTime") or key == "OpeningDate":
                assert datetime.fromisoformat(value).tzinfo is not None, (key, value)
            _check_datetimes(value)
    elif isinstance(node, list):
        for item in node:
            _check_datetimes(item)


@functools.cache
def _document(api: str) -> dict:
    return json.loads((SPECS / SPEC_FILES[api]).read_text())


def operations(api: str, prefix: str) -> set[tuple[str, str]]:
    """(method, `prefix` + path) of every operation of the vendored `api`."""
    return {(method.upper(), prefix + path) for path, item in _document(api)["paths"].items()
            for method in item if method in ("get", "post", "put", "patch", "delete")}


def assert_answers_as_declared(response, api: str, method: str, path: str) -> None:
    """`response` is a status the `api` declares for the operation at `path` (its template, without the API's
    prefix), with a body of the schema it declares for that status (none where it declares none)."""
    declared = _document(api)["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in declared, (method, path, response.status_code, response.text)
    answer = declared[str(response.status_code)]
    if "$ref" in answer:
        answer = _document(api)["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    content = answer.get("content") or {}
    media = content.get("application/json; charset=utf-8") or content.get("application/json")
    if media is None:
        assert response.content == b"", (method, path)
        return
    schema = media["schema"]["$ref"].rsplit("/", 1)[1]
    if schema != "File":  # a file's schema is an empty object: any document
        assert_conforms(response.json(), schema, api)
