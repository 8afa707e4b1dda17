"""The resource pipeline: named stages, run in one direction, each able to refuse.

`on_request` hooks run in the order of the tuple; `on_response` hooks run in reverse, so the stages that shape the
answer unwrap in the mirror order of the ones that checked the request (Envoy's filter chain). A stage refuses by
raising `Refusal`; it never writes a response itself. The order is written once, here.

Consent-bound calls carry the consent id in the signed token; everything the token proves is checked first, without
I/O. The consent record is then the only source of what it grants: Admit reads it live in one round trip and
decides status, expiry, permission, account and the unattended allowance together - in the script, because the
allowance may only be charged for a call that passes the permission and account checks. The permissions, accounts
and window it returns drive Forward (what the bank is asked for) and Minimise (what the TPP is given).
"""
from __future__ import annotations

from collections.abc import Mapping

from gateway.call import Call
from gateway.errors import Refusal
from gateway.oauth.tokens import AccessTokenVerifier
from gateway.payments.check import CheckPayment
from gateway.payments.consume import ConsumeConsent
from gateway.payments.idempotency import Idempotency
from gateway.payments.signature import VerifySignature
from gateway.pipeline.admission import Admit, AdmitClient
from gateway.pipeline.endpoint import ReadBody
from gateway.pipeline.forward import Forward
from gateway.pipeline.identity import RequireClientCertificate
from gateway.pipeline.minimise import Minimise
from gateway.pipeline.routing import MatchRoute
from gateway.pipeline.token import KeyCache, VerifyAccessToken
from gateway.policy import PolicySet
from gateway.ratelimit import RateLimitArgs
from gateway.store.admission import AdmissionStore
from gateway.store.idempotency import IdempotencyStore


def resource_stages(policy: PolicySet, forward: Forward, verifier: AccessTokenVerifier, keys: KeyCache,
                    admission: AdmissionStore, issuer: str, *, clients, consents,
                    idempotency: IdempotencyStore) -> tuple:
    """The stages of every proxied `/open-banking/...` call, in order (the `on_response` hooks run backwards:
    Minimise cuts the answer, ConsumeConsent settles a payment consent, Idempotency keeps the answer).

    The payment stages act only where the route's policy says so (`signature`, `idempotency`, `uses_consent`).
    """
    return (
        MatchRoute(policy),
        ReadBody(),
        RequireClientCertificate(),
        VerifyAccessToken(verifier, keys, consent_bound=True),
        VerifySignature(clients),
        CheckPayment(),
        Idempotency(idempotency, admission=admission, rate=RateLimitArgs(policy.limits)),
        Admit(admission, policy.unattended, RateLimitArgs(policy.limits), consents.customers),
        ConsumeConsent(consents, admission),
        Minimise(issuer),
        forward,
    )


def consent_api_stages(scope: str, verifier: AccessTokenVerifier, keys: KeyCache, admission: AdmissionStore,
                       policy: PolicySet, route_ids: Mapping[str, str], resource,
                       idempotency: IdempotencyStore | None = None, clients=None) -> tuple:
    """The stages of a consent-resource call (made with a client-credentials token), ending in `resource`;
    `route_ids` names the gateway route of each method (for its rate-limit group); with `idempotency`, a POST
    needs its x-idempotency-key and x-jws-signature (payment consents, UK OB v3.1.4+)."""
    return (
        RequireClientCertificate(),
        VerifyAccessToken(verifier, keys, consent_bound=False, scope=scope),
        AdmitClient(admission, RateLimitArgs(policy.limits), route_ids),
        *((VerifySignature(clients, always=True), Idempotency(idempotency, always=True))
          if idempotency is not None else ()),
        resource,
    )


class Pipeline:
    """Runs `on_request` forward, then `on_response` backward over the stages that ran.

    A stage may answer the call itself by setting `call.upstream` (an idempotent replay, the consent API): the
    request hooks stop there, as an Envoy filter that sends a local reply stops the chain. A refusal raised by a
    stage is first shown, with `on_abort(call, refusal)`, to the stages that ran before it (to undo a claim they
    made), then goes on to be rendered.
    """

    def __init__(self, stages: tuple) -> None:
        self.stages = stages

    async def run(self, call: Call) -> None:
        ran: list = []
        stage = None
        try:
            for stage in self.stages:
                if hasattr(stage, "on_request"):
                    await stage.on_request(call)
                ran.append(stage)
                if call.upstream is not None:
                    break
        except Refusal as refusal:
            await self._abort(ran, call, refusal)
            raise
        except Exception:
            # A fault before the last stage (the one that calls the bank) left the bank untouched: claims are
            # released; a fault in it may have come after the bank acted: treated as an unknown outcome.
            unknown = stage is self.stages[-1]
            await self._abort(ran, call, Refusal("backend.unanswered" if unknown else "error.unexpected"))
            raise
        for stage in reversed(ran):
            if hasattr(stage, "on_response"):
                await stage.on_response(call)

    @staticmethod
    async def _abort(ran: list, call: Call, refusal: Refusal) -> None:
        for stage in reversed(ran):
            if hasattr(stage, "on_abort"):
                await stage.on_abort(call, refusal)
