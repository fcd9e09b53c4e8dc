-- The identity check's guessing guard: checks the limits and reserves the attempt in one step.
-- The attempt counts as a failure until the directory says otherwise, so tries made at the same
-- moment cannot all slip under the limit.
-- KEYS: number lock, number failures, caller failures, attempt marker, Redis' marker (missing:
--       Redis restarted empty and no recovery has put the lock-outs back yet)
-- ARGV: now (ms), member, number window (ms), number limit, number ttl (s),
--       caller window (ms), caller limit, caller ttl (s), attempt ttl (s)
-- Returns 1 (go ahead), 0 (the number is locked), -1 (the caller is limited) or 2 (go ahead,
-- but Redis may have forgotten a lock: the caller asks the database).
local now = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[6]))
if redis.call('ZCARD', KEYS[3]) > tonumber(ARGV[7]) then return -1 end
if redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[9]) then
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('ZADD', KEYS[3], now, ARGV[2])
  redis.call('EXPIRE', KEYS[3], ARGV[8])
end
if redis.call('EXISTS', KEYS[5]) == 0 then return 2 end
return 1
