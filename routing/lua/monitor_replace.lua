-- Replace a live monitor session by its next revision: a compare and set on its live marker.
-- KEYS: the call's monitors hash (field NAME: the session's JSON; NAME|live: 'id:rev' while live)
-- ARGV: supervisor, the marker it was read with, the new session (JSON), its marker ('' when
--       it has ended), ttl (s)
-- Returns {1, ''} when replaced, or {0, the current session or ''}: it changed meanwhile, or
-- it is no longer live.
local monitors = KEYS[1]
local supervisor, expected, session, marker, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local live = supervisor .. '|live'
if redis.call('HGET', monitors, live) ~= expected then
  return {0, redis.call('HGET', monitors, supervisor) or ''}
end
redis.call('HSET', monitors, supervisor, session)
if marker == '' then
  redis.call('HDEL', monitors, live)
else
  redis.call('HSET', monitors, live, marker)
end
redis.call('EXPIRE', monitors, ttl)
return {1, ''}
