-- An adviser's own state change. Returns {1, new state} or {0, current state, reason}.
-- KEYS: adviser hash   ARGV: prefix, name, command, now (ms), ttl (s)
local prefix, name, command, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = KEYS[1]
local state = redis.call('HGET', key, 'state') or 'offline'
local busy = (state == 'offered' or state == 'on_call')
local target
if command == 'available' then
  if busy then return {0, state, 'you have a call; it ends first'} end
  target = 'available'
elseif command == 'ready' then
  if state == 'available' then return {1, state} end
  if state ~= 'wrap_up' then return {0, state, 'ready is for the end of wrap-up; you are ' .. state} end
  target = 'available'
elseif command == 'break' then
  if busy then return {0, state, 'you have a call; take a break after it'} end
  if state == 'offline' then return {0, state, 'sign in (available) before taking a break'} end
  target = 'break'
elseif command == 'offline' then
  if busy then return {0, state, 'you have a call; it ends first'} end
  target = 'offline'
else
  return {0, state, 'unknown status ' .. command}
end
if target == state then
  redis.call('EXPIRE', key, ttl)
  return {1, state}
end
local skills = redis.call('HGET', key, 'skills') or ''
for skill in string.gmatch(skills, '[^,]+') do
  if target == 'available' then
    redis.call('ZADD', prefix .. 'available:' .. skill, now, name)
    redis.call('EXPIRE', prefix .. 'available:' .. skill, ttl)
  else
    redis.call('ZREM', prefix .. 'available:' .. skill, name)
  end
end
redis.call('ZREM', prefix .. 'wrap-up-ends', name)
redis.call('HSET', key, 'state', target, 'since', now, 'call_sid', '', 'offer_id', '')
redis.call('EXPIRE', key, ttl)
return {1, target}
