-- Start a supervisor's monitor session of a call, unless they have a live one already.
-- KEYS: the call's monitors hash (field NAME: the session's JSON; NAME|live: 'id:rev' while live)
-- ARGV: supervisor, the new session (JSON), its live marker ('id:0'), ttl (s)
-- Returns {1, the new session} or {0, the live session they have}.
local monitors = KEYS[1]
local supervisor, session, marker, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HGET', monitors, supervisor .. '|live') then
  return {0, redis.call('HGET', monitors, supervisor) or ''}
end
redis.call('HSET', monitors, supervisor, session, supervisor .. '|live', marker)
redis.call('EXPIRE', monitors, ttl)
return {1, session}
