"""Refusals, the reason catalogue, and the two error renderers (OBErrorResponse1 and OAuth 2.0 error JSON).

A stage refuses by raising; only `RenderErrors` turns a refusal into a response, and `Audit` records its reason id.

    Exception
    └── Refusal(reason, message=None, headers=None)     HTTP status and error code come from REASONS[reason]
        (no subclasses: a new refusal is one line in REASONS, so the catalogue is the whole list)

Reason ids are `<stage>.<reason>`, stable across releases: the audit log, the metrics and the tests key on them.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class Reason:
    status: int
    code: str  # UK.OBIE.* ErrorCode for resource calls; the OAuth `error` value for the authorization server
    message: str


# The catalogue: every refusal the gateway can make. UK OB v3.1.11 OBError1.ErrorCode values only.
REASONS: Mapping[str, Reason] = {
    "identity.no_certificate": Reason(401, "UK.OBIE.Field.Missing", "A client certificate is required (mutual TLS)."),
    "identity.bad_certificate": Reason(401, "UK.OBIE.Field.Invalid", "The client certificate is not valid."),
    "route.not_found": Reason(404, "UK.OBIE.Resource.NotFound", "No such resource."),
    "route.method_not_allowed": Reason(405, "UK.OBIE.Resource.NotFound", "This method is not allowed on the resource."),
    "request.too_large": Reason(413, "UK.OBIE.Field.Invalid", "The request body is too large."),
    "backend.unavailable": Reason(502, "UK.OBIE.UnexpectedError", "The bank's service could not be reached."),
    "backend.error": Reason(502, "UK.OBIE.UnexpectedError", "The bank's service failed to answer."),
    "backend.timeout": Reason(504, "UK.OBIE.UnexpectedError", "The bank's service did not answer in time."),
    "request.incomplete": Reason(400, "UK.OBIE.Field.Invalid", "The request body ended before its declared length."),
    "audit.unavailable": Reason(503, "UK.OBIE.UnexpectedError",
                                "The call could not be recorded in the audit log; try again later."),
    "error.unexpected": Reason(500, "UK.OBIE.UnexpectedError", "An unexpected error occurred."),
}


class Refusal(Exception):
    """Stop the request with the catalogued status and code; `message` replaces the catalogue's text for detail."""

    def __init__(self, reason: str, message: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        self.entry = REASONS[reason]  # a KeyError here is a programming error: every reason is catalogued
        self.reason = reason
        self.message = message or self.entry.message
        self.headers = dict(headers or {})
        super().__init__(f"{reason}: {self.message}")

    @property
    def status(self) -> int:
        return self.entry.status


def ob_error_body(refusal: Refusal, error_id: str | None = None) -> bytes:
    """UK OB v3.1 `OBErrorResponse1`: Code is the HTTP status as text, Id a reference the TPP can quote to the bank."""
    return orjson.dumps({
        "Code": str(refusal.status),
        "Id": error_id or str(uuid.uuid4()),
        "Message": refusal.entry.message,
        "Errors": [{"ErrorCode": refusal.entry.code, "Message": refusal.message}],
    })


def oauth_error_body(refusal: Refusal) -> bytes:
    """RFC 6749 §5.2 error response."""
    return orjson.dumps({"error": refusal.entry.code, "error_description": refusal.message})
