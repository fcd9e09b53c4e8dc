-- What routing knows of a call. KEYS: call answered marker, call's open offer
-- Returns {answered marker or false, offer id or false}.
return redis.call('MGET', KEYS[1], KEYS[2])
