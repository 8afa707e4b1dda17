-- Every chain's head and the audit stream's last id, read in one step: `audit_append.lua` adds records and moves
-- their chain's head in one script, so every record up to that id belongs to a head in the map, and every head in
-- the map names a record up to that id. What a checkpoint commits to (AuditChain.checkpoint).
-- KEYS[1] = record stream, KEYS[2] = heads hash. Returns {flat heads hash, last stream id ("0-0" when empty)}.
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
return {redis.call('HGETALL', KEYS[2]), last[1] and last[1][1] or '0-0'}
