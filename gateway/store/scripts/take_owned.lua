-- Take a single-use credential (authorization code, pushed request) only for the client it was issued to, in one
-- step: another client naming it learns nothing and burns nothing.
-- KEYS[1] = the credential's record (JSON with client_id), KEYS[2] = its redemption marker (may not exist)
-- ARGV[1] = the asking client
-- Returns {"taken", record} | {"other"} | {"gone", marker or ""}
local record = redis.call('GET', KEYS[1])
if not record then
  return {'gone', redis.call('GET', KEYS[2]) or ''}
end
if cjson.decode(record)['client_id'] ~= ARGV[1] then
  return {'other'}
end
redis.call('DEL', KEYS[1])
return {'taken', record}
