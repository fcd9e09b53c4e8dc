-- Set the live flow pointer unless Redis already holds a newer generation.
-- KEYS: pointer   ARGV: value ("generation:number:digest"), its generation, ttl (s),
--                       force (1: the database is the truth, whatever Redis holds)
-- Returns 1 when written.
local current = redis.call('GET', KEYS[1])
if current and ARGV[4] ~= '1' then
  local generation = tonumber(string.match(current, '^(%d+):'))
  if generation and generation > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
