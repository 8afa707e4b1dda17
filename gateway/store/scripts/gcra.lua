-- GCRA (the generic cell rate algorithm: a token bucket kept as one "theoretical arrival time"), on Redis's clock.
-- Prepended to the scripts that admit calls, so the rate limit rides in their one round trip.
-- rate_limit(key, tier_key, default_tier, limits, now_us) → allowed, name, q, w, remaining, reset_s, retry_ms
--   limits: "tier rate burst;tier rate burst;..." for the route's group (rate 0: unlimited)
-- Exact across workers: each call moves the arrival time atomically, so no more than rate x time + burst pass.
local function rate_limit(key, tier_key, default_tier, limits, group, now_us)
  local tier = redis.call('GET', tier_key) or default_tier
  local rate, burst
  for name, r, b in string.gmatch(limits, '([^%s;]+) (%d+) (%d+)') do
    if name == tier then rate, burst = tonumber(r), tonumber(b) end
    if name == default_tier and not rate then rate, burst = tonumber(r), tonumber(b) end
  end
  if not rate or rate == 0 then
    return true, '', 0, 0, 0, 0, 0  -- unlimited (a tier the policy no longer knows falls back to the default)
  end
  local name = tier
  if group ~= 'default' then name = tier .. '.' .. group end
  local interval = 1000000 / rate             -- µs between calls at the sustained rate
  local capacity = interval * burst           -- how far ahead of now the arrival time may run
  local window = math.ceil(burst / rate)
  local tat = tonumber(redis.call('GET', key) or now_us)
  if tat < now_us then tat = now_us end
  local next_tat = tat + interval
  if next_tat - now_us > capacity then
    local retry_ms = math.ceil((next_tat - capacity - now_us) / 1000)
    return false, name, burst, window, 0, math.ceil((tat - now_us) / 1000000), retry_ms
  end
  redis.call('SET', key, string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now_us) / 1000) + 1)
  local remaining = math.floor((now_us + capacity - next_tat) / interval)
  return true, name, burst, window, remaining, math.ceil((next_tat - now_us) / 1000000), 0
end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
