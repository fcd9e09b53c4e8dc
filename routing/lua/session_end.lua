-- Forget a finished call's session and remember that it ended (a late webhook must not bring it
-- back). KEYS: session, ended marker, calls in the menu   ARGV: ended marker ttl (s), call sid
-- Returns the sealed session, or false when there was none.
local data = redis.call('HGET', KEYS[1], 'data')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return data
