-- Admit one client-credentials call (the consent API): the TPP's rate limit (gcra.lua, prepended), then the
-- token's signing key not revoked (token.key_revoked), the client enabled and its token not revoked. One round trip.
-- KEYS[1] revoked-token marker, KEYS[2] client-disabled marker, KEYS[3] the TPP's rate bucket, KEYS[4] its tier,
-- KEYS[5] the revoked-key marker of the token's signing key, KEYS[6] a DPoP proof's jti marker (absent: no proof)
-- ARGV[1] default tier, ARGV[2] the route group's limits, ARGV[3] the route group, ARGV[4] ms the jti is remembered
-- Returns {verdict, rate policy name, q, w, r, t, retry_ms}.
local allowed, name, q, w, r, reset, retry = rate_limit(KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], now_us())
if not allowed then
  return {'ratelimit.exceeded', name, q, w, r, reset, retry}
end
if redis.call('EXISTS', KEYS[5]) > 0 then
  return {'token.key_revoked', name, q, w, r, reset, 0}
end
if KEYS[6] and redis.call('SET', KEYS[6], '1', 'NX', 'PX', ARGV[4]) == false then
  return {'token.dpop_replayed', name, q, w, r, reset, 0}
end
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then
  return {'token.revoked', name, q, w, r, reset, 0}
end
return {'ok', name, q, w, r, reset, 0}
