-- The caller will hang up and be called back: the entry keeps its place and lives on.
-- KEYS: entry, queue, line marker   ARGV: sealed entry (now a callback), ttl (s)
-- Returns 1; refuses (before writing) when the entry is gone (the call ended meanwhile), so
-- that nothing chained after it (the durable copy) runs.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'refused', 0} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
return 1
