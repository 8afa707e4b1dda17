"""The request-level types every listener shares (the resource pipeline, the consent API, the authorization server,
the customer pages): `Call`, everything one request's stages decide, kept in one typed object under
`scope["obgw.call"]`; `Upstream`, the answer being built; `ClientCertificate`, the verified transport identity;
and `Stage`, the contract of a pipeline stage (run by `pipeline.Pipeline`), which stages of every package implement.
A floor module: it imports nothing of the gateway at run time, so any package may use it without loading the rest."""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    from starlette.types import Receive

    from gateway.errors import Refusal
    from gateway.policy import RoutePolicy
    from gateway.policy.fields import Entitlement
    from gateway.store.idempotency import Claim
    from gateway.trace import Trace

SCOPE_KEY = "obgw.call"
T = TypeVar("T")


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
    claims: Mapping[str, Any] | None = None          # the verified access token's claims
    key_id: str | None = None                        # the kid of the key that signed it (Admit: not revoked)
    dpop_jti: str | None = None                      # a DPoP-bound token's proof (Admit: used once)
    customer_id: str | None = None                   # the bank's customer (Admit, the pages); audited as a pseudonym
    entitlement: Entitlement | None = None           # what the consent allows (Admit), for Forward and Minimise
    unattended: bool = False                         # reads consented data without the customer present (Admit)
    delivered: tuple[str, ...] = ()                  # fingerprints of the records the answer holds (Minimise)
    metered: bool = False                            # Admit's script counted it (usage): it settles the outcome
    payment_digest: str = ""                         # a payment's Initiation + Risk (CheckPayment), for Admit
    payment_claim: str | None = None                 # the claim Admit made on a payment consent, until resolved
    vrp_claim: str | None = None                     # the amount a VRP payment holds in its periods, until resolved
    idempotency: tuple[str, Claim] | None = None     # (x-idempotency-key, the claim) this call owns
    receive: Receive | None = None                   # the ASGI receive: the transport, like the scope (ReadBody)
    body: bytes = b""
    document: dict[str, Any] | None = None           # the body as read and checked by CheckRequest (request_type)
    upstream: Upstream | None = None
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # on the answer, refusals too
    status: int = 0
    reason: str | None = None                        # the refusal's reason id, when refused
    decision: str = "allow"                          # "allow" | "refuse" | "error"
    trace: Trace | None = None                       # W3C trace context (InteractionId): logged, sent to the bank

    # What an earlier stage has set, for the stages after it (the stage order guarantees it; a broken order fails
    # loudly here rather than as an AttributeError on None somewhere later).
    @property
    def routed(self) -> RoutePolicy:
        """The route policy (set by the routing stage)."""
        return required(self.route, "route")

    @property
    def tpp(self) -> str:
        """The TPP's client id (set by the access-token stage)."""
        return required(self.client_id, "client_id")

    @property
    def entitled(self) -> Entitlement:
        """What the consent allows (set by Admit)."""
        return required(self.entitlement, "entitlement")

    @property
    def answer(self) -> Upstream:
        """The answer being built (set by the stage that stopped the chain)."""
        return required(self.upstream, "upstream")

    def refuse(self, reason: str) -> None:
        """Mark the call refused under `reason` (audited so), whoever answers it: a stage's Refusal or a page."""
        self.decision, self.reason = "refuse", reason


def required(value: T | None, name: str) -> T:
    """`call.<name>`, which an earlier stage must have set."""
    if value is None:
        raise RuntimeError(f"call.{name} is not set: a stage runs before the stage that sets it")
    return value


class Flow(enum.Enum):
    """What a stage's request hook says: on to the next stage, or stop there, the call answered."""
    CONTINUE = "continue"
    STOP = "stop"


CONTINUE, STOP = Flow.CONTINUE, Flow.STOP


class Stage(Protocol):
    """A pipeline stage: a class built once with its dependencies; what one request decides lives only on the Call.

    Every hook has a default that does nothing; `Pipeline` finds, once when it is built, which hooks a stage defines
    and calls only those (a stage subclasses Stage to inherit the defaults):

    - `on_request(call)`: check or enrich the call, or refuse it by raising `Refusal` (never by writing a response).
      `CONTINUE` passes the call on; `STOP` says the stage has answered it (set `call.upstream`: the bank's answer,
      an idempotent replay, a consent-API resource), so no later request hook runs.
    - `on_response(call)`: reshape or settle the answer; run in reverse order over the stages the call went through.
    - `on_abort(call, refusal)`: a later stage refused the call, or failed; undo a claim this stage made.

    `calls_bank`: True only on a stage that sends the call to the bank. A fault (anything but a Refusal) there may
    have come after the bank acted: the stages before it are shown `backend.unanswered` (unknown outcome: a payment
    claim stays held). A fault anywhere else left the bank untouched: they are shown `error.unexpected`.
    """

    calls_bank: ClassVar[bool] = False

    async def on_request(self, call: Call) -> Flow:
        return CONTINUE

    async def on_response(self, call: Call) -> None:
        return None

    async def on_abort(self, call: Call, refusal: Refusal) -> None:
        return None
