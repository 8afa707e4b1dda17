"""The policy engine: `policies/` is data, this package is its compiler (ARCHITECTURE 8.3, 8.5).

`load_policy` reads a policy directory once, at start, into an immutable `PolicySet`; a bad policy raises
`PolicyError`, whose text lists every problem as `file:line:col: path: message`.
"""
from gateway.policy.compile import PolicySet, load_policy
from gateway.policy.loader import PolicyError, PolicyProblem
from gateway.policy.model import RoutePolicy, ServicePolicy
from gateway.policy.router import MethodNotAllowed, RouteMatch

__all__ = [
    "MethodNotAllowed",
    "PolicyError",
    "PolicyProblem",
    "PolicySet",
    "RouteMatch",
    "RoutePolicy",
    "ServicePolicy",
    "load_policy",
]
