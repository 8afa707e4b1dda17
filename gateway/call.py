"""The request-level types every listener shares (the resource pipeline, the consent API, the authorization server,
the customer pages): `Call`, everything one request's stages decide, kept in one typed object under
`scope["obgw.call"]`; `Upstream`, the answer being built; `ClientCertificate`, the verified transport identity.
A floor module: it imports nothing of the gateway at run time, so any package may use it without loading the rest."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.policy import RoutePolicy
    from gateway.policy.fields import Grant

SCOPE_KEY = "obgw.call"


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    thumbprint: str          # RFC 8705 §3.1 x5t#S256: base64url(SHA-256(DER)), no padding
    subject: str             # RFC 4514 string
    issuer: str
    not_after: datetime


@dataclass(slots=True)
class Upstream:
    """The back-end's answer, as the later (response) stages see and reshape it."""
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(slots=True)
class Call:
    interaction_id: str
    ts: str
    started: float                                   # time.perf_counter() at arrival
    method: str
    path: str = ""
    query: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # as received, identity headers stripped
    certificate: ClientCertificate | None = None
    route_template: str | None = None                # what the audit log names: a template, never a concrete path
    route: RoutePolicy | None = None
    path_params: dict[str, str] = field(default_factory=dict)
    client_id: str | None = None
    consent_id: str | None = None
    claims: Mapping | None = None                    # the verified access token's claims
    key_id: str | None = None                        # the kid of the key that signed it (Admit: not revoked)
    customer_id: str | None = None                   # the bank's customer (Admit, the pages); audited as a pseudonym
    grant: Grant | None = None                       # what the consent grants (Admit), for Forward and Minimise
    unattended: bool = False                         # reads consented data without the customer present (Admit)
    payment_digest: str = ""                         # a payment's Initiation + Risk (CheckPayment), for Admit
    payment_claim: str | None = None                 # the claim Admit made on a payment consent, until resolved
    idempotency: tuple | None = None                 # (x-idempotency-key, the claim) this call owns
    body: bytes = b""
    upstream: Upstream | None = None
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # on the answer, refusals too
    status: int = 0
    reason: str | None = None                        # the refusal's reason id, when refused
    decision: str = "allow"                          # "allow" | "refuse" | "error"

    def refuse(self, reason: str) -> None:
        """Mark the call refused under `reason` (audited so), whoever answers it: a stage's Refusal or a page."""
        self.decision, self.reason = "refuse", reason
