-- Commit an archive step (audit/archive.py): the archive's manifest has grown by one line, fsynced on disk; record
-- that line in Redis and trim the records it made safe, in one step, only while the caller holds the archiver's
-- lease and the manifest it extended is the one Redis last committed to (so two archivers, or an archive directory
-- that is not this log's, can never trim a record the committed manifest does not hold).
-- KEYS[1] = record stream, KEYS[2] = archive state hash, KEYS[3] = archiver lease
-- ARGV[1] = archiver, ARGV[2] = expected manifest line digest ("" before the first), ARGV[3] = new line digest,
-- ARGV[4] = its number, ARGV[5] = the last stream id the archive holds, ARGV[6] = MINID to trim to ("" to trim nothing)
-- Returns the number of records trimmed; errors NOTLEASE (another archiver holds the lease) or STALEARCHIVE <digest>.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return redis.error_reply('NOTLEASE')
end
local current = redis.call('HGET', KEYS[2], 'manifest')
if not current then current = '' end
if current ~= ARGV[2] and current ~= ARGV[3] then
  return redis.error_reply('STALEARCHIVE ' .. current)
end
redis.call('HSET', KEYS[2], 'manifest', ARGV[3], 'n', ARGV[4], 'last', ARGV[5])
if ARGV[6] == '' then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', ARGV[6])
