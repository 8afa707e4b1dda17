-- Charge one call to the TPP's rate limit (gcra.lua, prepended): the authorization server's pushed authorization
-- requests, which count against the same per-TPP buckets as the resource calls. One round trip.
-- KEYS[1] the TPP's rate bucket, KEYS[2] its tier; ARGV[1] default tier, ARGV[2] the route group's limits,
-- ARGV[3] the route group. Returns {verdict, rate policy name, q, w, r, t, retry_ms}, as admit_client.lua does.
local allowed, name, q, w, r, reset, retry = rate_limit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], now_us())
if not allowed then
  return {'ratelimit.exceeded', name, q, w, r, reset, retry}
end
return {'ok', name, q, w, r, reset, 0}
