-- The presence sweep: advisers whose desk has been gone longer than the grace period become
-- 'away' (no calls); those whose desk is back return to the state they had chosen.
-- A desk is reachable when one of its tabs is live and, for a browser phone (a client device,
-- or none), that tab did not report its phone as unregistered.
--   available, wrap_up -> away (out of the available sets, wrap-up timer dropped)
--   offered            -> reported as 'withdraw' (the caller must go back first: see presence.py)
--   on_call            -> left alone: Twilio tells when the call ends; away after that
--   away + reachable   -> back to what they had chosen (available: into the available sets)
-- An adviser who never opened a desk (an API client) is not followed.
-- KEYS: wrap-up ends, then per adviser: adviser hash, desk tabs, desk phones
-- ARGV: available-set template, now (ms), grace (ms), ttl (s), the browser phone's device prefix,
--       then the adviser names
-- Returns {{name, change, state, offer id}, ...}, change '' when nothing changed.
local before, after = string.match(ARGV[1], '^(.-){}(.*)$')
local now, grace, ttl, client = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local wrap_up_ends = KEYS[1]
local results = {}
local function set_available(hash, name, add)
  for skill in string.gmatch(redis.call('HGET', hash, 'skills') or '', '[^,]+') do
    local available = before .. skill .. after
    if add then
      redis.call('ZADD', available, now, name)
      redis.call('EXPIRE', available, ttl)
    else
      redis.call('ZREM', available, name)
    end
  end
end
for i = 6, #ARGV do
  local name = ARGV[i]
  local base = 1 + (i - 6) * 3
  local hash, tabs, phones = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local fields = redis.call('HMGET', hash, 'state', 'desk_seen', 'device', 'unreachable_since',
    'away_return', 'offer_id')
  local state, seen, device, since, away_return, offer_id =
    fields[1], fields[2], fields[3] or '', fields[4], fields[5], fields[6] or ''
  local change = ''
  if state and seen then
    for _, gone in ipairs(redis.call('ZRANGEBYSCORE', tabs, '-inf', now)) do
      redis.call('HDEL', phones, gone)
    end
    redis.call('ZREMRANGEBYSCORE', tabs, '-inf', now)
    local browser_phone = device == '' or string.sub(device, 1, #client) == client
    local reachable = false
    for _, tab in ipairs(redis.call('ZRANGE', tabs, 0, -1)) do
      if not browser_phone or redis.call('HGET', phones, tab) ~= 'unregistered' then
        reachable = true
        break
      end
    end
    if reachable then
      if since then redis.call('HDEL', hash, 'unreachable_since') end
      if state == 'away' then
        state = away_return or 'available'
        redis.call('HSET', hash, 'state', state, 'since', now)
        redis.call('HDEL', hash, 'away_return')
        if state == 'available' then set_available(hash, name, true) end
        redis.call('EXPIRE', hash, ttl)
        change = 'back'
      end
    else
      if not since then
        since = now
        redis.call('HSET', hash, 'unreachable_since', now)
      end
      if now - tonumber(since) >= grace then
        if state == 'available' or state == 'wrap_up' then
          set_available(hash, name, false)
          redis.call('ZREM', wrap_up_ends, name)
          redis.call('HSET', hash, 'state', 'away', 'since', now, 'away_return', 'available',
            'call_sid', '', 'offer_id', '')
          redis.call('EXPIRE', hash, ttl)
          state = 'away'
          change = 'away'
        elseif state == 'offered' and offer_id ~= '' then
          change = 'withdraw'
        end
      end
    end
  end
  results[#results + 1] = {name, change, state or 'offline', offer_id}
end
return results
