-- After Redis was lost: a callback the database kept goes back in its line, at the place the
-- restore reserved for it (its order in line), with its entry; unless Redis knows it already.
-- KEYS: entry, queue, queue index, arrivals counter, reserved place
-- ARGV: sealed entry, priority base, call sid, product, entry ttl (s), queue ttl (s)
-- Returns 1 when put back, 0 when Redis had it.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local arrival = tonumber(redis.call('GET', KEYS[5]))
redis.call('DEL', KEYS[5])
if not arrival then
  arrival = redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
redis.call('ZADD', KEYS[2], 'NX', string.format('%.0f', tonumber(ARGV[2]) + arrival), ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return 1
