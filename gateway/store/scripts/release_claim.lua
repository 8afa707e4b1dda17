-- Release a payment consent's claim, only if it is still the one this call made (KEYS[1] consent, ARGV[1] claim).
if redis.call('HGET', KEYS[1], 'payment_claim') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'payment_claim')
end
return 0
