-- A TPP's one event subscription (UK OB Event Subscription: "An ASPSP must respond with a 409 error if an
-- event-subscription exists for that TPP"), changed only under its own id.
-- KEYS[1] = the TPP's subscription (hash); ARGV[1] = 'create' | 'replace' | 'delete', ARGV[2] = its id,
-- ARGV[3..] = field, value pairs to store (create, replace)
-- Returns 1 when done; 0 when create finds one already, or replace/delete find none with this id.
local stored = redis.call('HGET', KEYS[1], 'id')
if ARGV[1] == 'create' then
  if stored then return 0 end
elseif stored ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[1] ~= 'delete' then redis.call('HSET', KEYS[1], 'id', ARGV[2], unpack(ARGV, 3)) end
return 1
