-- Is this consent usable? The one home of the rule, on Redis's clock: prepended to admit.lua (every resource call)
-- and to consent_usable.lua (the authorization server: refresh, introspection, revocation), so the two cannot
-- disagree. In order, each refusal naming its reason id:
--   the consent is this TPP's                                          → consent.not_found
--   Authorised (or Consumed, where the route reads the payment it paid) → consent.not_authorised
--   by the grant the token came from (authorised again since: only the newest authorisation's tokens work)
--                                                                      → token.revoked
--   not past its ExpirationDateTime, to the millisecond               → consent.expired
-- A consent never authorised in time (past authorise_by) is still AwaitingAuthorisation here: not authorised.
-- consent_refusal(c, client_id, grant_id, now_ms, allows_consumed) → nil if usable, else the reason id;
-- c = HMGET of the consent hash starting 'client_id', 'status', 'expires_ms', 'grant_id' (more fields may follow).
local function consent_refusal(c, client_id, grant_id, now_ms, allows_consumed)
  if not c[1] or c[1] ~= client_id then
    return 'consent.not_found'
  end
  if c[2] ~= 'Authorised' and not (c[2] == 'Consumed' and allows_consumed) then
    return 'consent.not_authorised'
  end
  if c[4] ~= grant_id then
    return 'token.revoked'
  end
  if c[3] ~= '' and tonumber(c[3]) <= now_ms then
    return 'consent.expired'
  end
  return nil
end
