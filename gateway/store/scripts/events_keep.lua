-- Keep one event for a TPP's aggregated polling (UK OB Events API), unless its subscription leaves its type out.
-- KEYS[1] = the TPP's events (hash jti -> facts), KEYS[2] = their queue (sorted set of jtis in the order kept:
-- the ms kept x 1000, one more than the newest when two come in one ms),
-- KEYS[3] = the TPP's event subscription (hash)
-- ARGV[1] = jti, ARGV[2] = facts (JSON), ARGV[3] = event type, ARGV[4] = how long an event is kept (ms),
-- ARGV[5] = how many events a TPP may have kept at most
-- Returns {kept, callback, dropped}: kept 1 = kept now, 0 = kept already (a repeat of the same jti), -1 = the
-- subscription names event types and not this one; callback 1 when the subscription names a CallbackUrl; dropped =
-- the oldest events let go to stay within the bound.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local keep_ms = tonumber(ARGV[4])

local types = redis.call('HGET', KEYS[3], 'event_types')
if types and types ~= '' then
  local wanted = false
  for _, name in ipairs(cjson.decode(types)) do
    if name == ARGV[3] then wanted = true end
  end
  if not wanted then return {-1, 0, 0} end
end
local callback_url = redis.call('HGET', KEYS[3], 'callback_url')
local callback = 0
if callback_url and callback_url ~= '' then callback = 1 end

-- Events past their time go first (the keys' own expiry only ends a TPP's store once it is quiet).
-- Scores are exact integers up to 2^53; written with %.0f, as Lua's own number format keeps 14 digits only.
local horizon = string.format('%.0f', (now_ms - keep_ms) * 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon)
for _, jti in ipairs(expired) do redis.call('HDEL', KEYS[1], jti) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', horizon)

if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {0, callback, 0} end

local dropped = 0
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5]) + 1
if over > 0 then
  for _, jti in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    redis.call('HDEL', KEYS[1], jti)
    redis.call('ZREM', KEYS[2], jti)
    dropped = dropped + 1
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local score = now_ms * 1000
local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= score then score = tonumber(newest[2]) + 1 end
redis.call('ZADD', KEYS[2], string.format('%.0f', score), ARGV[1])
redis.call('PEXPIRE', KEYS[1], keep_ms)
redis.call('PEXPIRE', KEYS[2], keep_ms)
return {1, callback, dropped}
