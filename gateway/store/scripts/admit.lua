-- Admit one consent-bound resource call: everything about it that lives in Redis, decided in one round trip,
-- on Redis's own clock, in the order the consent rules are read (each refusal names its reason id):
--   token or its grant revoked, client disabled      → token.revoked
--   the consent is this TPP's                        → consent.not_found
--   Authorised, by the grant the token came from      → consent.not_authorised / token.revoked
--   not expired (to the millisecond)                  → consent.expired
--   the route's permission is granted                 → consent.permission_missing
--   the account is one the customer selected          → consent.account_not_selected
--   an unattended call within the rolling allowance   → consent.unattended_limit (+ ms until a slot frees)
-- Only a call that passes everything is counted against the unattended allowance.
-- KEYS[1] consent hash, KEYS[2] revoked-token marker, KEYS[3] revoked-grant marker, KEYS[4] client-disabled marker,
-- KEYS[5] the consent's unattended-calls sorted set
-- ARGV[1] client id, ARGV[2] grant id, ARGV[3] required permissions (space-separated, any one; "" = none),
-- ARGV[4] account id ("" = none), ARGV[5] "1" if unattended, ARGV[6] allowance, ARGV[7] window ms, ARGV[8] jti
-- Returns {reason[, retry_ms]} when refused, else {"ok", customer_id, accounts_json, permissions_json, window_json}.
if redis.call('EXISTS', KEYS[2], KEYS[3], KEYS[4]) > 0 then
  return {'token.revoked'}
end
local c = redis.call('HMGET', KEYS[1], 'client_id', 'status', 'expires_ms', 'customer_id', 'accounts', 'grant_id',
                     'permissions', 'window')
if not c[1] or c[1] ~= ARGV[1] then
  return {'consent.not_found'}
end
if c[2] ~= 'Authorised' then
  return {'consent.not_authorised'}
end
if c[6] ~= ARGV[2] then
  return {'token.revoked'}  -- authorised again since: only the newest authorisation's tokens work
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if c[3] ~= '' and tonumber(c[3]) <= now then
  return {'consent.expired'}
end
if ARGV[3] ~= '' then
  local granted = {}
  for _, p in ipairs(cjson.decode(c[7])) do granted[p] = true end
  local any = false
  for p in string.gmatch(ARGV[3], '%S+') do
    if granted[p] then any = true end
  end
  if not any then return {'consent.permission_missing'} end
end
if ARGV[4] ~= '' then
  local selected = false
  for _, a in ipairs(cjson.decode(c[5])) do
    if a == ARGV[4] then selected = true end
  end
  if not selected then return {'consent.account_not_selected'} end
end
if ARGV[5] == '1' then
  local window = tonumber(ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - window)
  if redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[6]) then
    local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    return {'consent.unattended_limit', tostring(tonumber(oldest[2]) + window - now)}
  end
  redis.call('ZADD', KEYS[5], now, t[1] .. t[2] .. ARGV[8])
  redis.call('PEXPIRE', KEYS[5], window)
end
return {'ok', c[4], c[5], c[7], c[8]}
