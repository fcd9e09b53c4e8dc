-- Forget a finished call's session and remember that it ended (a late webhook must not bring it
-- back). KEYS: session, ended marker   ARGV: ended marker ttl (s)
-- Returns the sealed session, or false when there was none.
local data = redis.call('HGET', KEYS[1], 'data')
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return data
