-- The lease of the one archiver of the audit stream (audit/archive.py): taken when free, kept (renewed) by its holder,
-- or given back (ARGV[2] = 0) by its holder only. As event_feed_lease.lua, for the audit log's own slot.
-- KEYS[1] = the lease; ARGV[1] = the archiver asking, ARGV[2] = the lease's length (ms), 0 to release.
-- Returns 1 if it holds the lease (or released it), 0 if another archiver does.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
