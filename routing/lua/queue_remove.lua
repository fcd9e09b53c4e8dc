-- Take a call out of its line (hung up, answered). KEYS: queue, entry, line marker
-- ARGV: call sid. Returns 1 when the entry was there.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
return redis.call('DEL', KEYS[2])
