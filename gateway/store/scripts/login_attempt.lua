-- One customer login attempt, counted before the bank is asked, so parallel guesses cannot overtake the count; and
-- the lock that follows too many, which grows each time but never outlasts its own end.
-- KEYS[1] = the username's state, a hash: n (attempts since the last success or lock), locks (locks since the last
--           success), until (the lock's end, ms on Redis's clock)
-- ARGV    = attempts per lock, first lock ms, longest lock ms, forget ms (how long past its last lock or attempt the
--           state is kept)
-- Returns 0 (counted: ask the bank) or the ms left of the lock (refused, and the lock left exactly as it was).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'n', 'locks', 'until')
local n, locks, till = tonumber(state[1] or 0), tonumber(state[2] or 0), tonumber(state[3] or 0)
if till > now then
  return till - now
end
n = n + 1
if n >= tonumber(ARGV[1]) then
  -- This attempt is the last before the lock: it still goes to the bank; every one after it waits for the lock's end.
  till = now + math.min(tonumber(ARGV[2]) * 2 ^ locks, tonumber(ARGV[3]))
  locks, n = locks + 1, 0
end
redis.call('HSET', KEYS[1], 'n', n, 'locks', locks, 'until', string.format('%.0f', till))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.max(till - now, 0) + tonumber(ARGV[4])))
return 0
