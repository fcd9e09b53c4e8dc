-- An adviser's own change of state.
-- KEYS: adviser hash, wrap-up ends, presence due
-- ARGV: available-set template, adviser name, command, now (ms), ttl (s), presence ttl (s)
-- Returns {1, new state}, or {0, current state, refusal code}.
local before, after = string.match(ARGV[1], '^(.-){}(.*)$')
local name, command, now, ttl = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = KEYS[1]
local state = redis.call('HGET', key, 'state') or 'offline'
local busy = (state == 'offered' or state == 'on_call')
local target
if command == 'available' then
  if busy then return {0, state, 'call_in_progress'} end
  target = 'available'
elseif command == 'ready' then
  if state == 'available' then return {1, state} end
  if state ~= 'wrap_up' then return {0, state, 'not_in_wrap_up'} end
  target = 'available'
elseif command == 'break' then
  if busy then return {0, state, 'break_after_call'} end
  if state == 'offline' then return {0, state, 'sign_in_first'} end
  target = 'break'
elseif command == 'offline' then
  if busy then return {0, state, 'call_in_progress'} end
  target = 'offline'
else
  return {0, state, 'unknown_command'}
end
if target == state then
  redis.call('EXPIRE', key, ttl)
  return {1, state}
end
local skills = redis.call('HGET', key, 'skills') or ''
for skill in string.gmatch(skills, '[^,]+') do
  local available = before .. skill .. after
  if target == 'available' then
    redis.call('ZADD', available, now, name)
    redis.call('EXPIRE', available, ttl)
  else
    redis.call('ZREM', available, name)
  end
end
redis.call('ZREM', KEYS[2], name)
-- Back to work from a state the presence sweep leaves alone (away, break, missed, offline):
-- it must look at a followed adviser's desk again at its next run (routing/presence.py).
local followed = redis.call('HEXISTS', key, 'desk_seen') == 1
if target == 'available' and state ~= 'wrap_up' and followed then
  redis.call('ZADD', KEYS[3], now, name)
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
redis.call('HSET', key, 'state', target, 'since', now, 'call_sid', '', 'offer_id', '')
redis.call('EXPIRE', key, ttl)
return {1, target}
