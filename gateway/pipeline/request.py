"""CheckRequest: a body the route describes (`request_type`) conforms to its v3.1.11 schema and, where the route
says so (`consent_field` in the body, `consent_param` in the path), names the access token's own consent: a TPP
cannot act under one consent while naming another (UK OB: UK.OBIE.Resource.ConsentMismatch). Before Admit, so a
malformed call costs no Redis round trip."""
from __future__ import annotations

from typing import Any, cast

from gateway.call import CONTINUE, Call, Flow, Stage
from gateway.errors import Refusal
from gateway.json_body import InvalidJson, loads_request
from gateway.specs import api_of, first_problem


class CheckRequest(Stage):
    async def on_request(self, call: Call) -> Flow:
        route = call.routed
        if route.consent_param is not None and call.path_params[route.consent_param] != call.consent_id:
            raise Refusal("request.consent_mismatch", path=route.consent_param)
        if route.request_type is None:
            return CONTINUE
        try:
            body = loads_request(call.body)
        except InvalidJson as exc:
            raise Refusal("request.invalid_json", f"The body is not accepted: {exc}.") from None
        problem = first_problem(body, route.request_type, api_of(route.request_type))
        if problem is not None:
            path, message, missing = problem
            raise Refusal("request.field_missing" if missing else "request.field_invalid", message, path=path)
        call.document = cast(dict[str, Any], body)  # schema-valid: an object; the later stages read it from here
        if route.consent_field is not None:
            named: object = body
            for name in route.consent_field:
                named = named.get(name) if isinstance(named, dict) else None
            if named != call.consent_id:
                raise Refusal("request.consent_mismatch", path=".".join(route.consent_field))
        return CONTINUE
