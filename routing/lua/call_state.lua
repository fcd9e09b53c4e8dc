-- What routing knows of a call. KEYS: call answered marker, call's open offer, call's transfer
-- Returns {answered marker or false, offer id or false, 1 if a transfer is in progress else 0}.
local found = redis.call('MGET', KEYS[1], KEYS[2])
return {found[1], found[2], redis.call('EXISTS', KEYS[3])}
