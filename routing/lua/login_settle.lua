-- Staff sign-in guard: the password was right. The account starts counting afresh; the client
-- address gets back the one attempt it reserved (not the failures of others from there).
-- KEYS: the account's attempts, the client address' attempts
-- Returns 1.
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 1
