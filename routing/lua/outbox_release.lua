-- Let go of the outbox's drain lock, when it is still ours (a failed write: the batch stays).
-- KEYS: the drain lock   ARGV: lock token
-- Returns 1 when released.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
