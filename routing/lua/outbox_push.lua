-- Keep an item until the database has it: at the outbox's tail, the outbox's time renewed.
-- KEYS: the outbox list
-- ARGV: the item, the outbox's ttl (s)
-- Returns the outbox's length.
local length = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return length
