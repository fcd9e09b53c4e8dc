-- The presence sweep: advisers whose desk has been gone longer than the grace period become
-- 'away' (no calls); those whose desk is back return to the state they had chosen.
-- A desk is reachable when one of its tabs is live and, for a browser phone (a client device,
-- or none), that tab did not report its phone as unregistered.
--   available, wrap_up -> away (out of the available sets, wrap-up timer dropped)
--   offered            -> reported as 'withdraw' (the caller must go back first: see presence.py)
--   on_call            -> left alone: Twilio tells when the call ends; away after that
--   away + reachable   -> back to what they had chosen (available: into the available sets)
-- An adviser who never opened a desk (an API client) is not followed.
-- Each adviser looked at is given the time the sweep must look again (the presence-due set):
-- when their last reachable tab stops counting, when the grace period ends, at once while a
-- call of theirs may still end at a gone desk; never while nothing can change without a desk
-- (away, break, missed, offline: a beat or a return to work puts them back in the set).
-- KEYS: wrap-up ends, presence due, then per adviser: adviser hash, desk tabs, desk phones
-- ARGV: available-set template, now (ms), grace (ms), ttl (s), the browser phone's device prefix,
--       presence ttl (s), then the adviser names
-- Returns {{name, change, state, offer id}, ...}, change '' when nothing changed.
local before, after = string.match(ARGV[1], '^(.-){}(.*)$')
local now, grace, ttl, client = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local wrap_up_ends, due, due_ttl = KEYS[1], KEYS[2], ARGV[6]
local settled = {away = true, ['break'] = true, missed = true, offline = true}
local results = {}
local scheduled = false
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
for i = 7, #ARGV do
  local name = ARGV[i]
  local base = 2 + (i - 7) * 3
  local hash, tabs, phones = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local fields = redis.call('HMGET', hash, 'state', 'desk_seen', 'device', 'unreachable_since',
    'away_return', 'offer_id')
  local state, seen, device, since, away_return, offer_id =
    fields[1], fields[2], fields[3] or '', fields[4], fields[5], fields[6] or ''
  local change = ''
  local look_at = nil -- when to look at this adviser again; nil: not until something happens
  if state and seen then
    local gone = redis.call('ZRANGEBYSCORE', tabs, '-inf', now)
    if #gone > 0 then
      redis.call('HDEL', phones, unpack(gone))
      redis.call('ZREMRANGEBYSCORE', tabs, '-inf', now)
    end
    local browser_phone = device == '' or string.sub(device, 1, #client) == client
    local reachable_until = nil
    local live = redis.call('ZREVRANGE', tabs, 0, -1, 'WITHSCORES')
    for j = 1, #live, 2 do -- the latest first: the first that counts is the last to expire
      if not browser_phone or redis.call('HGET', phones, live[j]) ~= 'unregistered' then
        reachable_until = tonumber(live[j + 1])
        break
      end
    end
    if reachable_until then
      look_at = reachable_until
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
        if not settled[state] then look_at = now end
      else
        look_at = tonumber(since) + grace
      end
    end
  end
  if look_at then
    redis.call('ZADD', due, look_at, name)
    scheduled = true
  else
    redis.call('ZREM', due, name)
  end
  results[#results + 1] = {name, change, state or 'offline', offer_id}
end
if scheduled then redis.call('EXPIRE', due, due_ttl) end
return results
