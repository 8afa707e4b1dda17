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

from gateway.oauth.tokens import AccessTokenVerifier
from collections.abc import Mapping

from gateway.pipeline.admission import Admit, AdmitClient, RateLimitArgs
from gateway.pipeline.call import Call
from gateway.pipeline.endpoint import ReadBody
from gateway.pipeline.forward import Forward
from gateway.pipeline.identity import RequireClientCertificate
from gateway.pipeline.minimise import Minimise
from gateway.pipeline.routing import MatchRoute
from gateway.pipeline.token import KeyCache, VerifyAccessToken
from gateway.policy import PolicySet
from gateway.store.admission import AdmissionStore


def resource_stages(policy: PolicySet, forward: Forward, verifier: AccessTokenVerifier, keys: KeyCache,
                    admission: AdmissionStore, issuer: str) -> tuple:
    """The stages of every proxied `/open-banking/...` call, in order (Minimise acts on the way back)."""
    return (
        MatchRoute(policy),
        ReadBody(),
        RequireClientCertificate(),
        VerifyAccessToken(verifier, keys, consent_bound=True),
        Admit(admission, policy.unattended, RateLimitArgs(policy.limits)),
        Minimise(issuer),
        forward,
    )


def consent_api_stages(scope: str, verifier: AccessTokenVerifier, keys: KeyCache, admission: AdmissionStore,
                       policy: PolicySet, route_ids: Mapping[str, str], resource) -> tuple:
    """The stages of a consent-resource call (made with a client-credentials token), ending in `resource`;
    `route_ids` names the gateway route of each method (for its rate-limit group)."""
    return (
        RequireClientCertificate(),
        VerifyAccessToken(verifier, keys, consent_bound=False, scope=scope),
        AdmitClient(admission, RateLimitArgs(policy.limits), route_ids),
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
