-- The lease of the one worker that reads the bank's payment status changes: taken when free, kept by its holder.
-- KEYS[1] = the lease; ARGV[1] = the worker asking, ARGV[2] = the lease's length (ms). Returns 1 if it holds it.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
