-- Put a value at the head of a list, keep only the latest few, and renew its time to live.
-- KEYS: the list
-- ARGV: ttl (s), how many to keep, the value
-- Returns the list's length before it was trimmed.
local length = redis.call('LPUSH', KEYS[1], ARGV[3])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return length
