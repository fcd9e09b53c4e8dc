-- Save a call's session compare-and-set, with the TwiML reply of the step it answers.
-- KEYS: session, reply, ended marker, calls in the menu[, live flow pointer]
-- ARGV: expected seq (-1: a new call), new seq, sealed session, session ttl (s), reply,
--       reply ttl (s), call sid[, the live pointer the new call was built on]
-- Returns 1, or refuses: 0 another delivery was first (or the call has ended), -1 the new call
-- was built on a flow version that is no longer live, -2 nobody knows the live version.
local current = redis.call('HGET', KEYS[1], 'seq')
local expected = tonumber(ARGV[1])
if expected < 0 then
  if current or redis.call('EXISTS', KEYS[3]) == 1 then return {'refused', 0} end
  if KEYS[5] then
    local live = redis.call('GET', KEYS[5])
    if not live then return {'refused', -2} end
    if live ~= ARGV[8] then return {'refused', -1} end
  end
elseif (not current) or tonumber(current) ~= expected then
  return {'refused', 0}
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
if expected < 0 then
  -- A new call is in the menu until it joins a line or ends, scored by Redis' own clock (ms)
  -- so a call whose end never came can be swept by age.
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[4], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[7])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
return 1
