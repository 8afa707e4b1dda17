-- Idempotency keys (UK Open Banking v3.1 x-idempotency-key), one hash per (TPP, key); see store/idempotency.py for
-- the semantics. Every operation is one atomic step on Redis's clock, so workers and processes agree.
-- KEYS[1] = the record, obgw:{<client>}:idem:<sha256 of the key>: a hash of
--   digest (the request's), state ('pending' | 'done'), and while pending: owner (the claim's token),
--   lease_until (ms, Redis time); once done: status, headers (packed by the caller), body.
-- ARGV[1] = the operation, then its arguments:
--   claim   digest token ttl_ms lease_ms   -> {'new'} | {'mismatch'} | {'replay', status, headers, body}
--                                             | {'pending', '1' if the owner's lease has run out else '0'}
--   finish  token status headers body ttl_ms  -> 1 stored | 0 (the token does not own a pending record)
--   release token                             -> 1 freed  | 0 (the token does not own a pending record)
--   abandon                                   -> 1 freed  | 0 (no record, answered, or the owner's lease still runs)
-- A pending record past its lease is never taken over by a claim: only its owner (finish/release) or `abandon`.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local op, record = ARGV[1], KEYS[1]

if op == 'claim' then
  local r = redis.call('HMGET', record, 'digest', 'state', 'lease_until', 'status', 'headers', 'body')
  if not r[1] then
    redis.call('HSET', record, 'digest', ARGV[2], 'state', 'pending', 'owner', ARGV[3],
               'lease_until', string.format('%.0f', now_ms() + tonumber(ARGV[5])))
    redis.call('PEXPIRE', record, ARGV[4])
    return {'new'}
  end
  if r[1] ~= ARGV[2] then
    return {'mismatch'}
  end
  if r[2] == 'done' then
    return {'replay', r[4], r[5], r[6]}
  end
  if now_ms() >= tonumber(r[3] or '0') then
    return {'pending', '1'}
  end
  return {'pending', '0'}
end

if op == 'finish' or op == 'release' then
  local r = redis.call('HMGET', record, 'owner', 'state')
  if r[1] ~= ARGV[2] or r[2] ~= 'pending' then
    return 0
  end
  if op == 'release' then
    redis.call('DEL', record)
    return 1
  end
  redis.call('HDEL', record, 'owner', 'lease_until')
  redis.call('HSET', record, 'state', 'done', 'status', ARGV[3], 'headers', ARGV[4], 'body', ARGV[5])
  redis.call('PEXPIRE', record, ARGV[6])
  return 1
end

if op == 'abandon' then
  local r = redis.call('HMGET', record, 'state', 'lease_until')
  if r[1] ~= 'pending' or now_ms() < tonumber(r[2] or '0') then
    return 0
  end
  redis.call('DEL', record)
  return 1
end

return redis.error_reply('idempotency.lua: unknown operation ' .. tostring(op))
