"""The resource pipeline: named stages, run in one direction, each able to refuse.

`on_request` hooks run in the order of the tuple; `on_response` hooks run in reverse, so the stages that shape the
answer unwrap in the mirror order of the ones that checked the request (Envoy's filter chain). A stage refuses by
raising `Refusal`; it never writes a response itself. The order is written once, here.

Consent-bound calls carry the consent id in the signed token; the consent's live state (status, expiry, owner,
the authorisation the token came from, revocations) is read by Admit in one round trip, after everything the
token proves has been checked without I/O.
"""
from __future__ import annotations

from gateway.oauth.tokens import AccessTokenVerifier
from gateway.pipeline.admission import Admit, AdmitClient
from gateway.pipeline.call import Call
from gateway.pipeline.forward import Forward
from gateway.pipeline.identity import RequireClientCertificate
from gateway.pipeline.routing import MatchRoute
from gateway.pipeline.token import KeyCache, VerifyAccessToken
from gateway.policy import PolicySet
from gateway.store.admission import AdmissionStore


def resource_stages(policy: PolicySet, forward: Forward, verifier: AccessTokenVerifier, keys: KeyCache,
                    admission: AdmissionStore) -> tuple:
    """The stages of every proxied `/open-banking/...` call, in order."""
    return (
        MatchRoute(policy),
        RequireClientCertificate(),
        VerifyAccessToken(verifier, keys, consent_bound=True),
        Admit(admission),
        forward,
    )


def consent_api_stages(scope: str, verifier: AccessTokenVerifier, keys: KeyCache, admission: AdmissionStore,
                       resource) -> tuple:
    """The stages of a consent-resource call (created with a client-credentials token), ending in `resource`."""
    return (
        RequireClientCertificate(),
        VerifyAccessToken(verifier, keys, consent_bound=False, scope=scope),
        AdmitClient(admission),
        resource,
    )


class Pipeline:
    def __init__(self, stages: tuple) -> None:
        self.stages = stages
        self._request_hooks = tuple(s.on_request for s in stages if hasattr(s, "on_request"))
        self._response_hooks = tuple(s.on_response for s in reversed(stages) if hasattr(s, "on_response"))

    async def run(self, call: Call) -> None:
        for hook in self._request_hooks:
            await hook(call)
        for hook in self._response_hooks:
            await hook(call)
