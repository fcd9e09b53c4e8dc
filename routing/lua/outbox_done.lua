-- A drained batch is in the database: take it off the outbox, put back what must wait longer,
-- and let go of the drain lock. Only while the lock is still ours: when it expired, another
-- instance may be writing the same batch, and the items stay (the writes are idempotent).
-- KEYS: the outbox list, the drain lock
-- ARGV: lock token, items written (taken from the head), outbox ttl (s), items to put back...
-- Returns 1 when done, 0 when the lock was no longer ours.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('LTRIM', KEYS[1], tonumber(ARGV[2]), -1)
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
redis.call('DEL', KEYS[2])
return 1
