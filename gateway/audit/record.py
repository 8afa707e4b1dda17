"""AuditRecord: the fixed, allow-listed fields of one audited call.

There is no free-form field, so an account number, a name, an amount or a token cannot creep in: the route is the
policy's path *template* (never the concrete path), identities are ids and certificate thumbprints, and the records
delivered are keyed fingerprints that say nothing without the audit key.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuditRecord:
    ts: str                      # ISO 8601 UTC with milliseconds, when the call arrived
    interaction_id: str          # x-fapi-interaction-id echoed to the caller
    method: str
    route: str | None            # path template of the matched route or endpoint; None when nothing matched
    status: int                  # HTTP status sent to the caller
    decision: str                # "allow", "refuse" (a catalogued refusal) or "error" (unexpected failure)
    reason: str | None           # the refusal's stable reason id, e.g. "identity.no_certificate"
    latency_ms: float
    client_id: str | None = None
    consent_id: str | None = None
    cert_thumbprint: str | None = None  # RFC 8705 x5t#S256 of the presented client certificate
    subject: str | None = None          # the customer's audit pseudonym (audit/key_files.py), never the customer id
    operator: str | None = None         # who ran an audited operator command (a re-identifying search)
    unattended: bool | None = None      # True: read the customer's data without them present (PSD2 RTS Art. 36)
    delivered: tuple[str, ...] | None = None  # keyed fingerprints of the records given (audit/fingerprints.py)

    def fields(self) -> dict[str, object]:
        # Not dataclasses.asdict: it deep-copies every value (12 µs of a worker's CPU per call, measured with
        # loadtests/bench.py), and these fields are all immutable scalars. An optional field is left out when
        # unset, so records written before it existed keep their hashes.
        fields = {name: getattr(self, name) for name in REQUIRED_FIELDS}
        for name in OPTIONAL_FIELDS:
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        return fields


OPTIONAL_FIELDS: tuple[str, ...] = ("subject", "operator", "unattended", "delivered")
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AuditRecord))
REQUIRED_FIELDS: tuple[str, ...] = tuple(name for name in FIELDS if name not in OPTIONAL_FIELDS)
# What the chain adds to every record.
CHAIN_FIELDS: tuple[str, ...] = ("chain", "seq", "prev", "hash")
