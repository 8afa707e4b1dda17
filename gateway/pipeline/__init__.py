"""The resource pipeline: named stages, run in one direction, each able to refuse. The order is written once, here,
as one literal tuple per pipeline.

The stage contract (`gateway.call.Stage`, a Protocol) and how `Pipeline` runs it:
- `on_request(call)` hooks run in the order of the tuple. Each returns `CONTINUE` or `STOP`; `STOP` means the stage
  answered the call (it set `call.upstream`: Forward with the bank's answer, Idempotency with a replay, a consent-API
  resource), and no later request hook runs, as an Envoy filter that sends a local reply stops the chain.
- `on_response(call)` hooks run in reverse over the stages the call went through, so the stages that shape the answer
  unwrap in the mirror order of the ones that checked the request (Envoy's filter chain).
- A stage refuses by raising `Refusal`; it never writes a response itself. The refusal is first shown, with
  `on_abort(call, refusal)`, to the stages before it (to undo a claim they made), then goes on to be rendered.
- A fault (any other exception) is shown to them as `backend.unanswered` if the failing stage declares `calls_bank`
  (the bank may have acted: a payment claim stays held), else as `error.unexpected`; then it goes on to be rendered.
- Which hooks a stage has is found once, when the Pipeline is built: a call runs only the hooks that exist.
- The request body reaches ReadBody through `call.receive`, set by the endpoint (endpoint.py).

Consent-bound calls carry the consent id in the signed token; everything the token proves is checked first, without
I/O. The consent record is then the only source of what it allows: Admit reads it live in one round trip and
decides status, expiry, permission, account and the unattended allowance together - in the script, because the
allowance may only be charged for a call that passes the permission and account checks. The permissions, accounts
and window it returns (`call.entitlement`) drive Forward (what the bank is asked for) and Minimise (what the TPP is
given).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.call import STOP, Call, Stage
from gateway.errors import Refusal
from gateway.oauth.dpop import Nonces
from gateway.oauth.signing_keys import KeyRing
from gateway.oauth.tokens import AccessTokenVerifier
from gateway.payments.answer_signature import SignAnswer
from gateway.payments.attach_file import AttachFile
from gateway.payments.check import CheckPayment
from gateway.payments.consume import ConsumeConsent
from gateway.payments.idempotency import Idempotency
from gateway.payments.signature import VerifySignature
from gateway.payments.vrp import HoldToControlParameters
from gateway.pipeline.admission import Admit, AdmitClient, Meter, UsageMeter
from gateway.pipeline.endpoint import ReadBody
from gateway.pipeline.forward import Forward
from gateway.pipeline.identity import RequireClientCertificate
from gateway.pipeline.minimise import Minimise
from gateway.pipeline.request import CheckRequest
from gateway.pipeline.routing import MatchRoute
from gateway.pipeline.token import KeyCache, VerifyAccessToken
from gateway.policy import PolicySet
from gateway.ratelimit import RateLimitArgs
from gateway.store.admission import AdmissionStore
from gateway.store.clients import ClientStore
from gateway.store.consents import ConsentStore
from gateway.store.idempotency import IdempotencyStore
from gateway.store.vrp import VrpUsage

Hook = Callable[..., Awaitable[Any]]  # a stage's bound on_request, on_response or on_abort


def resource_stages(policy: PolicySet, forward: Forward, verifier: AccessTokenVerifier, keys: KeyCache,
                    admission: AdmissionStore, issuer: str, *, clients: ClientStore, consents: ConsentStore,
                    idempotency: IdempotencyStore, ring: Callable[[], KeyRing], vrp: VrpUsage,
                    fingerprint_key: bytes, nonces: Nonces | None = None) -> tuple[Stage, ...]:
    """The stages of every proxied `/open-banking/...` call, in order (the `on_response` hooks run backwards:
    Minimise cuts the answer, ConsumeConsent settles a payment consent, Idempotency keeps the answer). Forward,
    last, is the one stage that calls the bank; Idempotency stops the chain when it replays an answer.

    Meter counts the calls Admit never sees (refused before it; idempotent replays); Admit meters the rest in its
    one round trip (issue 20). The payment stages act only where the route's policy says so (`signature`,
    `idempotency`, `uses_consent`, `control_parameters`, `attaches_file`).
    """
    usage = UsageMeter(admission, policy.plans)
    return (
        MatchRoute(policy),
        Meter(usage),
        ReadBody(),
        RequireClientCertificate(),
        VerifyAccessToken(verifier, keys, consent_bound=True, origin=issuer, nonces=nonces),
        VerifySignature(clients),
        CheckRequest(),
        CheckPayment(),
        Idempotency(idempotency, admission=admission, rate=RateLimitArgs(policy.limits)),
        SignAnswer(ring, issuer),
        Admit(admission, policy.unattended, RateLimitArgs(policy.limits), consents.customer_ids(), usage),
        HoldToControlParameters(consents, vrp),
        Minimise(issuer, policy, fingerprint_key),
        ConsumeConsent(consents, admission),
        AttachFile(consents),
        forward,
    )


def consent_api_stages(scope: str, verifier: AccessTokenVerifier, keys: KeyCache, admission: AdmissionStore,
                       policy: PolicySet, route_ids: Mapping[str, str], resource: Stage,
                       idempotency: IdempotencyStore | None = None,
                       clients: ClientStore | None = None, signed_by: SignAnswer | None = None,
                       origin: str = "", nonces: Nonces | None = None) -> tuple[Stage, ...]:
    """The stages of a consent-resource call (made with a client-credentials token), ending in `resource`, which
    answers it (consents.api; none of them calls the bank). `route_ids` names the gateway route of each method (for
    its rate-limit group); with `idempotency`, a POST needs its x-idempotency-key and x-jws-signature (payment
    consents, UK OB v3.1.4+)."""
    return (
        RequireClientCertificate(),
        VerifyAccessToken(verifier, keys, consent_bound=False, scope=scope, origin=origin, nonces=nonces),
        AdmitClient(admission, RateLimitArgs(policy.limits), route_ids),
        *((VerifySignature(clients, always=True), Idempotency(idempotency, always=True))
          if idempotency is not None else ()),
        *((signed_by,) if signed_by is not None else ()),
        resource,
    )


class Pipeline:
    """Runs `on_request` forward, then `on_response` backward over the stages that ran (the contract: above)."""

    def __init__(self, stages: tuple[Stage, ...]) -> None:
        self.stages = stages
        hooks = [{name: _hook(stage, name) for name in ("on_request", "on_response", "on_abort")}
                 for stage in stages]
        self._requests = tuple((index, h["on_request"]) for index, h in enumerate(hooks) if h["on_request"])
        # Indexed by how many stages the call went through: their response (abort) hooks, last stage first.
        self._responses = tuple(tuple(h["on_response"] for h in reversed(hooks[:ran]) if h["on_response"])
                                for ran in range(len(stages) + 1))
        self._aborts = tuple(tuple(h["on_abort"] for h in reversed(hooks[:ran]) if h["on_abort"])
                             for ran in range(len(stages) + 1))
        self._faults = tuple("backend.unanswered" if getattr(stage, "calls_bank", False) else "error.unexpected"
                             for stage in stages)

    async def run(self, call: Call) -> None:
        ran = len(self.stages)
        index = 0
        try:
            for index, on_request in self._requests:
                if await on_request(call) is STOP:
                    ran = index + 1
                    break
        except Refusal as refusal:
            await self._abort(index, call, refusal)
            raise
        except Exception:
            await self._abort(index, call, Refusal(self._faults[index]))
            raise
        for on_response in self._responses[ran]:
            await on_response(call)

    async def _abort(self, ran: int, call: Call, refusal: Refusal) -> None:
        for on_abort in self._aborts[ran]:
            await on_abort(call, refusal)


def _hook(stage: Stage, name: str) -> Hook | None:
    """`stage`'s own `name` hook, bound; None where it has none, or only the default that does nothing."""
    defined = getattr(type(stage), name, None)
    return None if defined is None or defined is getattr(Stage, name) else getattr(stage, name)
