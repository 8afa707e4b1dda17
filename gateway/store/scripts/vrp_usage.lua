-- VRP periodic limits of one consent (store/vrp.py has the semantics). Each operation is one atomic step, so the
-- consent's payments, on any worker, are admitted exactly while they fit, whatever their order.
-- KEYS[1] = the usage hash, obgw:{<consent>}:vrp-usage, per period id (a string naming the limit and the period
--           instance, e.g. 'Month/Calendar/2026-12-01'):
--             u:<period>  settled: amounts the bank took
--             p:<period>  pending: amounts claimed whose outcome is not settled (absent = 0)
--             s:<period>  when an admitted claim last named the period (ms, Redis time)
-- KEYS[2] = the claims hash, obgw:{<consent>}:vrp-claims: claim id -> JSON {a = amount, p = [period ids],
--           t = claimed at ms, h = resolve-by ms} (numbers as strings: cjson would round them)
-- Amounts are integers of the currency's minor unit, at most 2^52 (sums stay exact in Lua's doubles).
-- ARGV[1] = the operation, then its arguments:
--   claim   claim_id amount hold_ms prune_ms n period_1 limit_1 ... period_n limit_n   (distinct periods)
--           -> {'ok'} | {'exceeded', period, limit, counted} | {'exists'}
--           Admitted iff for every period u + p + amount <= limit: then p += amount in each, s = now, the claim
--           is kept. Otherwise the first period (in ARGV order) it would exceed is named, with its limit and its
--           u + p, and nothing changes; 'exists': the claim id is held already, nothing changes.
--           An admitted claim also prunes the periods it does not name that no claim named for prune_ms (old
--           period instances: u, p and s go).
--   settle  claim_id -> 1 | 0 (no such claim)   the bank paid: p -= amount and u += amount in each period still
--                                                kept, the claim goes
--   release claim_id -> 1 | 0 (no such claim)   the bank did not pay: p -= amount (never below 0), the claim goes
-- A claim never expires here: its outcome may be a payment (see store/vrp.py). Only settle or release end it.
local usage, claims, op = KEYS[1], KEYS[2], ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(x)
  return string.format('%.0f', x)
end

if op == 'claim' then
  local claim_id, amount = ARGV[2], tonumber(ARGV[3])
  if redis.call('HEXISTS', claims, claim_id) == 1 then
    return {'exists'}
  end
  local n = tonumber(ARGV[6])
  local periods = {}
  for i = 1, n do
    local period, limit = ARGV[5 + 2 * i], tonumber(ARGV[6 + 2 * i])
    local c = redis.call('HMGET', usage, 'u:' .. period, 'p:' .. period)
    local counted = tonumber(c[1] or '0') + tonumber(c[2] or '0')
    if counted + amount > limit then
      return {'exceeded', period, int(limit), int(counted)}
    end
    periods[i] = period
  end
  local now = now_ms()
  local named = {}
  for _, period in ipairs(periods) do
    redis.call('HINCRBY', usage, 'p:' .. period, ARGV[3])
    redis.call('HSET', usage, 's:' .. period, int(now))
    named[period] = true
  end
  redis.call('HSET', claims, claim_id,
             cjson.encode({a = ARGV[3], p = periods, t = int(now), h = int(now + tonumber(ARGV[4]))}))
  local prune_before = now - tonumber(ARGV[5])
  local fields = redis.call('HGETALL', usage)
  for i = 1, #fields, 2 do
    local field = fields[i]
    if string.sub(field, 1, 2) == 's:' then
      local period = string.sub(field, 3)
      if not named[period] and tonumber(fields[i + 1]) < prune_before then
        redis.call('HDEL', usage, 'u:' .. period, 'p:' .. period, field)
      end
    end
  end
  return {'ok'}
end

if op == 'settle' or op == 'release' then
  local raw = redis.call('HGET', claims, ARGV[2])
  if not raw then
    return 0
  end
  local claim = cjson.decode(raw)
  local amount = tonumber(claim.a)
  for _, period in ipairs(claim.p) do
    local pending = tonumber(redis.call('HGET', usage, 'p:' .. period) or '0')
    if pending > amount then
      redis.call('HSET', usage, 'p:' .. period, int(pending - amount))
    else
      redis.call('HDEL', usage, 'p:' .. period)
    end
    if op == 'settle' and redis.call('HEXISTS', usage, 's:' .. period) == 1 then
      redis.call('HINCRBY', usage, 'u:' .. period, claim.a)
    end
  end
  redis.call('HDEL', claims, ARGV[2])
  return 1
end

return redis.error_reply('vrp_usage.lua: unknown operation ' .. tostring(op))
