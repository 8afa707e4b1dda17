-- Move the gateway's cursor in the bank's feed of payment status changes forward only: within one epoch (one bank
-- process) a lower number never replaces a higher one (a reader that lost its lease mid-read cannot move it back).
-- KEYS[1] = the cursor (hash epoch, seq); ARGV[1] = the bank's epoch, ARGV[2] = the last change read
-- Returns 1 if moved, 0 if the cursor was already there or further.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch == ARGV[1] and tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', ARGV[2])
return 1
