-- Aggregated polling (UK OB Events API, RFC 8936): drop the events the TPP acknowledges, then hand out the oldest.
-- KEYS[1] = the TPP's events (hash jti -> facts), KEYS[2] = their queue (sorted set, events_keep.lua)
-- ARGV[1] = how long an event is kept (ms), ARGV[2] = how many to hand out at most, ARGV[3] = n, the number of
-- acknowledged jtis, ARGV[4 .. 3+n] = those jtis, ARGV[4+n ..] = jtis the TPP reports errors for (kept)
-- Returns {acknowledged facts, reported facts, {jti, facts, jti, facts, ...} handed out, events left in all}.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local keep_ms = tonumber(ARGV[1])
-- Scores are exact integers up to 2^53; written with %.0f, as Lua's own number format keeps 14 digits only.
local horizon = string.format('%.0f', (now_ms - keep_ms) * 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon)
for _, jti in ipairs(expired) do redis.call('HDEL', KEYS[1], jti) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', horizon)

local acks = tonumber(ARGV[3])
local acknowledged = {}
for i = 4, 3 + acks do
  local facts = redis.call('HGET', KEYS[1], ARGV[i])
  if facts then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    acknowledged[#acknowledged + 1] = facts
  end
end
local reported = {}
for i = 4 + acks, #ARGV do
  local facts = redis.call('HGET', KEYS[1], ARGV[i])
  if facts then reported[#reported + 1] = facts end
end

local out = {}
local most = tonumber(ARGV[2])
if most > 0 then
  for _, jti in ipairs(redis.call('ZRANGE', KEYS[2], 0, most - 1)) do
    local facts = redis.call('HGET', KEYS[1], jti)
    if facts then
      out[#out + 1] = jti
      out[#out + 1] = facts
    else
      redis.call('ZREM', KEYS[2], jti)
    end
  end
end
return {acknowledged, reported, out, redis.call('ZCARD', KEYS[2])}
