-- Admit one consent-bound resource call: everything about it that lives in Redis, decided in one round trip,
-- on Redis's own clock, in the order the consent rules are read (each refusal names its reason id):
--   the TPP's rate limit (gcra.lua, prepended)        → ratelimit.exceeded (+ ms until a call may pass)
--   the token's signing key revoked                  → token.key_revoked
--   a DPoP proof used before                         → token.dpop_replayed
--   token or its grant revoked, client disabled      → token.revoked
--   the consent usable (consent_rules.lua, prepended: this TPP's, Authorised by the grant the token came from,
--   not expired)                                      → consent.not_found / consent.not_authorised /
--                                                       token.revoked / consent.expired
--   the route's permission is granted                 → consent.permission_missing
--   the account is one the customer selected          → consent.account_not_selected
--   an unattended call within the rolling allowance   → consent.unattended_limit (+ ms until a slot frees)
--   a payment: Initiation + Risk the consent's        → payment.consent_mismatch
--   ... and, for a single payment, the consent free (claimed by this call) → payment.in_progress
-- Only a call that passes everything is counted against the unattended allowance or claims the consent.
-- KEYS[1] consent hash, KEYS[2] revoked-token marker, KEYS[3] revoked-grant marker, KEYS[4] client-disabled marker,
-- KEYS[5] the consent's unattended-calls sorted set, KEYS[6] the TPP's rate bucket, KEYS[7] the TPP's tier,
-- KEYS[8] the revoked-key marker of the token's signing key (`obgw keys revoke`), KEYS[9] the TPP's usage hash of
-- this UTC month, KEYS[10] the TPP's plan, KEYS[11] a DPoP proof's jti marker (absent: no proof)
-- ARGV[1] client id, ARGV[2] grant id, ARGV[3] required permissions (space-separated, any one; "" = none),
-- ARGV[4] account id ("" = none), ARGV[5] "1" if unattended, ARGV[6] allowance, ARGV[7] window ms, ARGV[8] jti,
-- ARGV[9] default tier, ARGV[10] the route group's limits, ARGV[11] the route group, ARGV[12] a nonce of this call,
-- ARGV[13] a payment's digest ("" = not a payment), ARGV[14] "1" if a Consumed consent still admits (payment reads),
-- ARGV[15] "1" if the payment claims the consent (a single payment; a VRP payment leaves it usable),
-- ARGV[16] ms a DPoP proof's jti is remembered (with KEYS[11]), ARGV[17] the route's API product, ARGV[18] the
-- default plan, ARGV[19] the product's monthly quota per plan ("plan quota;...", 0: none)
-- Metering (issue 20), in this same round trip: every call that reaches the script counts `<product>:calls`; a
-- refusal counts `<product>:refused:<reason>`; an admitted call counts `<product>:billable` at once (the bank
-- usually answers 2xx), which the gateway takes back (AdmissionStore.settle) when it does not: so a quota, checked
-- here as `billable` (answered 2xx, or still in flight) against the plan's, is never exceeded, even across workers.
--   over the plan's monthly quota of the product   → usage.quota_exceeded (counted, not billed)
-- Returns {verdict, rate policy name, q, w, r, t, retry_ms, customer_id, accounts_json, permissions_json,
-- window_json, instructed_amount}: verdict "ok" or the reason id; the rate fields describe the TPP's bucket after this call. A refusal
-- made once the consent is known to be this TPP's carries its customer_id too (the audit names whose data it was).
local now = now_us()
local allowed, name, q, w, r, reset, retry = rate_limit(KEYS[6], KEYS[7], ARGV[9], ARGV[10], ARGV[11], now)
local product = ARGV[17]
if redis.call('HINCRBY', KEYS[9], product .. ':calls', 1) == 1 then
  redis.call('EXPIRE', KEYS[9], 34560000)  -- 400 days: a month's usage outlives its statements and reconciliation
end
local function answer(verdict, retry_ms, ...)
  if verdict == 'ok' then
    redis.call('HINCRBY', KEYS[9], product .. ':billable', 1)
  else
    redis.call('HINCRBY', KEYS[9], product .. ':refused:' .. verdict, 1)
  end
  return {verdict, name, q, w, r, reset, retry_ms or 0, ...}
end
if not allowed then
  return answer('ratelimit.exceeded', retry)
end
now = math.floor(now / 1000)  -- the consent rules are in milliseconds
if redis.call('EXISTS', KEYS[8]) > 0 then
  return answer('token.key_revoked')
end
if KEYS[11] and redis.call('SET', KEYS[11], '1', 'NX', 'PX', ARGV[16]) == false then
  return answer('token.dpop_replayed')  -- a proof is good once, on whichever worker sees it first
end
if redis.call('EXISTS', KEYS[2], KEYS[3], KEYS[4]) > 0 then
  return answer('token.revoked')
end
local c = redis.call('HMGET', KEYS[1], 'client_id', 'status', 'expires_ms', 'grant_id', 'customer_id', 'accounts',
                     'permissions', 'window', 'payment_digest', 'instructed_amount')
local refusal = consent_refusal(c, ARGV[1], ARGV[2], now, ARGV[14] == '1')
if refusal == 'consent.not_found' then
  return answer(refusal)
elseif refusal then
  return answer(refusal, 0, c[5])
end
if ARGV[3] ~= '' then
  local granted = {}
  for _, p in ipairs(cjson.decode(c[7])) do granted[p] = true end
  local any = false
  for p in string.gmatch(ARGV[3], '%S+') do
    if granted[p] then any = true end
  end
  if not any then return answer('consent.permission_missing', 0, c[5]) end
end
if ARGV[4] ~= '' then
  local selected = false
  for _, a in ipairs(cjson.decode(c[6])) do
    if a == ARGV[4] then selected = true end
  end
  if not selected then return answer('consent.account_not_selected', 0, c[5]) end
end
local plan = redis.call('GET', KEYS[10]) or ARGV[18]
redis.call('HSET', KEYS[9], 'plan', plan)
for p, quota in string.gmatch(ARGV[19], '([^ ;]+) (%d+)') do
  if p == plan and tonumber(quota) > 0
      and tonumber(redis.call('HGET', KEYS[9], product .. ':billable') or '0') >= tonumber(quota) then
    return answer('usage.quota_exceeded', 0, c[5])
  end
end
if ARGV[5] == '1' then
  local window = tonumber(ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - window)
  if redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[6]) then
    local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    return answer('consent.unattended_limit', tonumber(oldest[2]) + window - now, c[5])
  end
  redis.call('ZADD', KEYS[5], now, tostring(now) .. ':' .. ARGV[12])  -- one member per call, however many a ms
  redis.call('PEXPIRE', KEYS[5], window)
end
if ARGV[13] ~= '' then
  if c[9] ~= ARGV[13] then
    return answer('payment.consent_mismatch', 0, c[5])
  end
  if ARGV[15] == '1' and redis.call('HSETNX', KEYS[1], 'payment_claim', ARGV[12]) == 0 then
    return answer('payment.in_progress', 0, c[5])
  end
end
return answer('ok', 0, c[5], c[6], c[7], c[8], c[10] or '')  -- a consent stored before 'instructed_amount': ''
