-- Failed customer logins from one source address, in a fixed window that starts with the first.
-- KEYS[1] = the count
-- ARGV    = 'take' | 'refund', most per window, window ms
-- take: counts an attempt before the bank is asked; returns 0 (go on) or the ms until the window ends (refused).
-- refund: an attempt that was no wrong password (a success, or refused by a locked username) gives its count back.
if ARGV[1] == 'refund' then
  if tonumber(redis.call('GET', KEYS[1]) or 0) > 0 then
    redis.call('DECR', KEYS[1])
  end
  return 0
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
if n > tonumber(ARGV[2]) then
  return math.max(redis.call('PTTL', KEYS[1]), 1)
end
return 0
