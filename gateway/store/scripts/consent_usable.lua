-- May the authorization server honour a token of this consent now? consent_rules.lua (prepended) decides, on
-- Redis's clock, as the Admit script does for every resource call.
-- KEYS[1] consent hash; ARGV[1] client id, ARGV[2] grant id ("" = none), ARGV[3] "1" if a Consumed consent counts
-- Returns "" if usable, else the reason id.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local c = redis.call('HMGET', KEYS[1], 'client_id', 'status', 'expires_ms', 'grant_id')
return consent_refusal(c, ARGV[1], ARGV[2], now_ms, ARGV[3] == '1') or ''
