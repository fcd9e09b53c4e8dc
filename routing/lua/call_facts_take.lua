-- Hand over what routing learnt of a finished call, for its record, and forget it.
-- KEYS: the call's facts hash
-- Returns the hash as a flat list of field, value (empty when nothing was learnt).
local facts = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return facts
