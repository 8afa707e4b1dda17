-- One audit shard's chain heads and its stream's last id, read in one step: `audit_append.lua` adds records and moves
-- their chain's head in one script, so every record up to that id belongs to a head in the map, and every head in
-- the map names a record up to that id. What a checkpoint commits to (AuditChain.checkpoint). With the server's time
-- in ms: no record can be added later with an id below it (AuditStore.heads_at, for a shard with no recent record).
-- KEYS[1] = record stream, KEYS[2] = heads hash.
-- Returns {flat heads hash, last stream id ("0-0" when empty), the current time in ms}.
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local now = redis.call('TIME')
return {redis.call('HGETALL', KEYS[2]), last[1] and last[1][1] or '0-0', now[1] * 1000 + math.floor(now[2] / 1000)}
