-- Append a batch of audit records to one chain, only if the chain's head is still the one they were chained to.
-- Each worker process owns its chain, so this compare never contends; it stops two writers forking one chain.
-- KEYS[1] = record stream, KEYS[2] = heads hash
-- ARGV[1] = chain id, ARGV[2] = expected head ("" for a new chain), ARGV[3] = new head "seq:hash", ARGV[4..] = records
local head = redis.call('HGET', KEYS[2], ARGV[1])
if not head then head = '' end
if head == ARGV[3] then
  return 0  -- this exact batch was stored already (a retry after a lost reply)
end
if head ~= ARGV[2] then
  return redis.error_reply('STALEHEAD ' .. head)
end
for i = 4, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'r', ARGV[i])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return #ARGV - 3
