-- Change a consent only if its stored status is one the transition table allows it to leave (compare-and-set),
-- so a customer approving and a TPP deleting at the same moment cannot both win.
-- KEYS[1] = consent hash; ARGV[1] = comma-separated expected statuses; ARGV[2..] = field, value pairs to store
-- Returns "" when stored, else the status found ("" is never a status; a missing consent returns false).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
for expected in string.gmatch(ARGV[1], '[^,]+') do
  if expected == status then
    redis.call('HSET', KEYS[1], unpack(ARGV, 2))
    return ''
  end
end
return status
