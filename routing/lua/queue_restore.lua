-- After Redis was lost: the callers Twilio still holds get places in front of every call that
-- joined a line since the loss, in Twilio's order. A caller already back in a line (their
-- waitUrl came before this ran) moves to their place now; the others' places wait for them.
-- KEYS: queue index, arrivals counter
-- ARGV: queue template, place template, priority step, place ttl (s), queue ttl (s),
--       then the callers' sids in Twilio's order
-- Returns {callers moved to their place, places reserved, calls moved behind them}.
local qbefore, qafter = string.match(ARGV[1], '^(.-){}(.*)$')
local pbefore, pafter = string.match(ARGV[2], '^(.-){}(.*)$')
local step, place_ttl, queue_ttl = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local n = #ARGV - 5
local place = {}
for i = 1, n do place[ARGV[5 + i]] = i end
local moved, behind = 0, 0
for _, product in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local line = qbefore .. product .. qafter
  local found = redis.call('ZRANGE', line, 0, -1, 'WITHSCORES')
  for i = 1, #found, 2 do
    local sid, score = found[i], tonumber(found[i + 1])
    local arrival = score % step
    local new
    if place[sid] then
      new = score - arrival + place[sid]
      place[sid] = nil
      moved = moved + 1
    else
      new = score + n
      behind = behind + 1
    end
    redis.call('ZADD', line, 'XX', string.format('%.0f', new), sid)
  end
end
local reserved = 0
for sid, i in pairs(place) do
  redis.call('SET', pbefore .. sid .. pafter, i, 'EX', place_ttl)
  reserved = reserved + 1
end
if n > 0 then
  redis.call('INCRBY', KEYS[2], n)
  redis.call('EXPIRE', KEYS[2], queue_ttl)
end
return {moved, reserved, behind}
