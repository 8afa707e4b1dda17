-- Admit one resource call: everything mutable about it, decided in one round trip on Redis's own clock.
-- KEYS[1] = consent hash, KEYS[2] = revoked-token marker, KEYS[3] = revoked-grant marker, KEYS[4] = client-disabled marker
-- ARGV[1] = the token's client id, ARGV[2] = the token's grant id
-- Returns {reason} when refused, else {"ok", customer_id, accounts_json}.
if redis.call('EXISTS', KEYS[2], KEYS[3], KEYS[4]) > 0 then
  return {'token.revoked'}
end
local c = redis.call('HMGET', KEYS[1], 'client_id', 'status', 'expires_ms', 'customer_id', 'accounts', 'grant_id')
if not c[1] or c[1] ~= ARGV[1] then
  return {'consent.not_found'}
end
if c[2] ~= 'Authorised' then
  return {'consent.not_authorised'}
end
if c[6] ~= ARGV[2] then
  return {'token.revoked'}  -- the consent was authorised again since: only the newest authorisation's tokens work
end
if c[3] ~= '' then
  local t = redis.call('TIME')
  if tonumber(c[3]) <= tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then
    return {'consent.expired'}
  end
end
return {'ok', c[4], c[5]}
