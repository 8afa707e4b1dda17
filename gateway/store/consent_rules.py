"""ConsentRules: "may this consent's tokens be used now?", for the authorization server (refresh, introspection,
revocation), answered by the same Lua function the Admit script applies to every resource call.

Why in Lua, not in Python: Admit must decide in its one round trip (the unattended allowance is charged only for a
call that passes every rule), so the rule has to live in the script; the authorization server asking Python on its
own clock would be a second home, and one that disagreed (it already did on Consumed). So `consent_rules.lua` holds
the rule once, prepended both to `admit.lua` and to the small `consent_usable.lua` run here, and both read Redis's
clock. Callers: `oauth.server`.
"""
from __future__ import annotations

from redis import Redis

from gateway.store import names
from gateway.store.redis import sync_script


class ConsentRules:
    def __init__(self, redis: Redis) -> None:
        self._usable = sync_script(redis, "consent_usable", preludes=("consent_rules",))

    def refusal(self, client_id: str, consent_id: str, grant_id: str | None, *,
                allows_consumed: bool = False) -> str | None:
        """None if the consent's tokens of authorisation `grant_id` may be used now, else the reason id Admit would
        give (`consent.not_found`, `consent.not_authorised`, `token.revoked`, `consent.expired`). `allows_consumed`:
        as for a route reading the payment its Consumed consent paid (routes.yaml `allows_consumed`)."""
        found = self._usable(keys=[names.consent(client_id, consent_id)],
                             args=[client_id, grant_id or "", "1" if allows_consumed else "0"])
        return found.decode() or None
