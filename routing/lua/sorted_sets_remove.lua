-- Remove one member from each of the sorted sets: what a MULTI/EXEC of ZREMs did, as one
-- command on the shared pipelined connection.
-- KEYS: the sorted sets
-- ARGV: the member
-- Returns how many of the sets held it.
local removed = 0
for _, key in ipairs(KEYS) do
  removed = removed + redis.call('ZREM', key, ARGV[1])
end
return removed
