-- Claim a private_key_jwt client assertion's jti (RFC 7523 §3 item 7: used once), in one sorted set per TPP whose
-- members are the SHA-256 of the jtis (a fixed length whatever the jti) scored by when each may be forgotten.
-- KEYS[1] = obgw:{<client>}:jtis; ARGV[1] = the jti's SHA-256, ARGV[2] = ms to remember it, ARGV[3] = most at once
-- Returns 'claimed', 'used' (seen before) or 'full' (the TPP already holds ARGV[3] jtis that are not yet forgotten).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 'used'
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 'full'
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then  -- the set lives as long as its longest-lived member (-1: no TTL yet)
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 'claimed'
