-- What one desk tab tells about the adviser's presence.
--   'beat'  -> the tab's event stream is open: it counts as live until the given time
--   'gone'  -> the tab's event stream closed: it no longer counts
--   'phone' -> the tab's browser phone is registered or not (kept per tab)
-- KEYS: the adviser's desk tabs, desk phones, adviser hash
-- ARGV: action, tab id, now (ms), live until (ms), phone state, ttl (s)
-- Returns 1. The presence sweep (presence_sweep.lua) decides what it means.
local tabs, phones, adviser = KEYS[1], KEYS[2], KEYS[3]
local action, tab, now, live_until, phone, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if action == 'beat' then
  redis.call('ZADD', tabs, live_until, tab)
  redis.call('EXPIRE', tabs, ttl)
  -- From the first desk on, the adviser's presence is followed (an API-only client is not).
  redis.call('HSET', adviser, 'desk_seen', now)
elseif action == 'gone' then
  redis.call('ZREM', tabs, tab)
  redis.call('HDEL', phones, tab)
elseif action == 'phone' then
  redis.call('HSET', phones, tab, phone)
  redis.call('EXPIRE', phones, ttl)
end
return 1
