-- Add a waiting call to its product's line; once only (a retried webhook, two instances).
-- KEYS: entry, queue, queue index, arrivals counter, ended marker, line marker, calls in the
--       menu, calls offered per product, the figures of the call's day (the wallboard);
--       optionally the call's reserved place (a caller found again after Redis was lost)
-- ARGV: sealed entry, priority base, call sid, product, entry ttl (s), queue ttl (s),
--       counter ttl (s), day's figures ttl (s)
-- Returns 1 when added, 0 when the call was queued before or has ended.
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[5]) == 1 then
  return 0
end
local arrival = nil
if KEYS[10] then
  arrival = tonumber(redis.call('GET', KEYS[10]))
  redis.call('DEL', KEYS[10])
end
if not arrival then
  arrival = redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[5])
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
redis.call('SET', KEYS[6], ARGV[4], 'EX', ARGV[5])
redis.call('ZADD', KEYS[2], 'NX', tonumber(ARGV[2]) + arrival, ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[6])
redis.call('ZREM', KEYS[7], ARGV[3])
redis.call('HINCRBY', KEYS[8], ARGV[4], 1)
redis.call('EXPIRE', KEYS[8], ARGV[7])
redis.call('HINCRBY', KEYS[9], 'offered', 1)
redis.call('EXPIRE', KEYS[9], ARGV[8])
return 1
