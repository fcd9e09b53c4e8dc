-- Set fields of a hash, read one field of it, and renew its time to live: what a MULTI/EXEC of
-- HSET, HGET and EXPIRE did, as one command on the shared pipelined connection.
-- KEYS: the hash
-- ARGV: ttl (s), the field to read ('' for none), then field, value, field, value...
-- Returns the value of the field read (as it was after the set), or false.
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  return false
end
return redis.call('HGET', KEYS[1], ARGV[2])
