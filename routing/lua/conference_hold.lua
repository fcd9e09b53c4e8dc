-- Hold or take off hold the caller of a conference, adding up the time held.
-- KEYS: the call's conference hash
-- ARGV: '1' hold / '0' unhold, now (ms), ttl (s)
-- Returns {1 if the hold state changed else 0, milliseconds held so far, 1 if held now}.
local conference = KEYS[1]
local hold, now, ttl = ARGV[1] == '1', tonumber(ARGV[2]), ARGV[3]
local since = tonumber(redis.call('HGET', conference, 'hold_since') or '')
local held = tonumber(redis.call('HGET', conference, 'hold_ms') or '0') or 0
local changed = 0
if hold and not since then
  redis.call('HSET', conference, 'hold_since', now)
  since, changed = now, 1
elseif not hold and since then
  held = held + math.max(0, now - since)
  redis.call('HSET', conference, 'hold_ms', held)
  redis.call('HDEL', conference, 'hold_since')
  since, changed = nil, 1
end
redis.call('EXPIRE', conference, ttl)
if since then return {changed, held + math.max(0, now - since), 1} end
return {changed, held, 0}
