-- Add to counters in a hash and renew its time to live.
-- KEYS: the hash
-- ARGV: ttl (s), then field, increment, field, increment...
-- Returns 1.
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
