-- Append a batch of audit records to one chain, only if the chain's head is still the one they were chained to.
-- Each worker process owns its chain, so this compare never contends; it stops two writers forking one chain.
-- The same round trip keeps each consent's recent accesses (what the customer's dashboard shows).
-- KEYS[1] = the chain's shard's record stream, KEYS[2] = its heads hash, KEYS[3..] = its recent-access lists of the
-- batch's accesses (one hash tag, one Cluster slot: store/names.py)
-- ARGV[1] = chain id, ARGV[2] = expected head ("" for a new chain), ARGV[3] = new head "seq:hash",
-- ARGV[4] = n, the number of records, ARGV[5..4+n] = records, ARGV[5+n..] = one access entry per KEYS[3..]
local head = redis.call('HGET', KEYS[2], ARGV[1])
if not head then head = '' end
if head == ARGV[3] then
  return 0  -- this exact batch was stored already (a retry after a lost reply)
end
if head ~= ARGV[2] then
  return redis.error_reply('STALEHEAD ' .. head)
end
local n = tonumber(ARGV[4])
for i = 5, 4 + n do
  redis.call('XADD', KEYS[1], '*', 'r', ARGV[i])
end
for k = 3, #KEYS do
  redis.call('LPUSH', KEYS[k], ARGV[4 + n + k - 2])
  redis.call('LTRIM', KEYS[k], 0, 49)
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return n
