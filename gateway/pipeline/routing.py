"""MatchRoute: method + path → the route's policy, or a 404/405 refusal in the UK OB error shape."""
from __future__ import annotations

from gateway.call import CONTINUE, Call, Flow, Stage
from gateway.errors import Refusal
from gateway.policy import MethodNotAllowed, PolicySet


class MatchRoute(Stage):
    def __init__(self, policy: PolicySet) -> None:
        self._policy = policy

    async def on_request(self, call: Call) -> Flow:
        match = self._policy.match(call.method, call.path)
        if match is None:
            raise Refusal("route.not_found")
        if isinstance(match, MethodNotAllowed):
            raise Refusal("route.method_not_allowed", headers={"Allow": ", ".join(match.allowed)})
        call.route, call.path_params, call.route_template = match.route, dict(match.path_params), match.route.path
        return CONTINUE
