-- Settle an offer. ARGV: prefix, offer id, outcome, now (ms), ttl (s), wrap-up end (ms)
-- outcome: 'answered'  -> adviser on_call, offer connected
--          'finished'  -> adviser wrap_up until the given time; offer gone
--          'missed'    -> call back to its place at the head; adviser missed
--          'withdrawn' -> call back to its place; adviser available again (not their fault)
--          'abandoned' -> the caller hung up: call gone; adviser available (or wrap_up if talking)
-- Returns {call sid, adviser, product, previous offer state, adviser state} or {} if no offer.
local prefix, id, outcome, now, ttl, wrap_end = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local offer = prefix .. 'offer:' .. id
local fields = redis.call('HMGET', offer, 'call_sid', 'adviser', 'product', 'score', 'state')
local call, adviser, product, score, was = fields[1], fields[2], fields[3], fields[4], fields[5]
if not call then return {} end
local adviser_key = prefix .. 'adviser:' .. adviser
local function become_available()
  redis.call('HSET', adviser_key, 'state', 'available', 'since', now, 'call_sid', '', 'offer_id', '')
  for skill in string.gmatch(redis.call('HGET', adviser_key, 'skills') or '', '[^,]+') do
    redis.call('ZADD', prefix .. 'available:' .. skill, now, adviser)
    redis.call('EXPIRE', prefix .. 'available:' .. skill, ttl)
  end
end
local function close_offer()
  redis.call('DEL', offer, prefix .. 'call:' .. call .. ':offer')
  redis.call('ZREM', prefix .. 'offer-deadlines', id)
end
local function wrap_up()
  redis.call('HSET', adviser_key, 'state', 'wrap_up', 'since', now, 'offer_id', '',
    'wrap_until', wrap_end, 'last_call', call)
  redis.call('ZADD', prefix .. 'wrap-up-ends', wrap_end, adviser)
  redis.call('EXPIRE', prefix .. 'wrap-up-ends', ttl)
end
local adviser_offer = redis.call('HGET', adviser_key, 'offer_id')
local owns = adviser_offer == id
if outcome == 'answered' then
  if was ~= 'offered' then return {call, adviser, product, was, redis.call('HGET', adviser_key, 'state')} end
  redis.call('HSET', offer, 'state', 'connected', 'connected', now)
  redis.call('SET', prefix .. 'call:' .. call .. ':answered', '1', 'EX', ttl)
  redis.call('ZREM', prefix .. 'offer-deadlines', id)
  if owns then redis.call('HSET', adviser_key, 'state', 'on_call', 'since', now) end
elseif outcome == 'finished' then
  close_offer()
  if owns then wrap_up() end
elseif outcome == 'missed' or outcome == 'withdrawn' then
  if was ~= 'offered' then return {call, adviser, product, was, redis.call('HGET', adviser_key, 'state')} end
  close_offer()
  if redis.call('EXISTS', prefix .. 'queue-entry:' .. call) == 1 then
    redis.call('ZADD', prefix .. 'queue:' .. product, 'NX', score, call)
  end
  if owns then
    if outcome == 'missed' then
      redis.call('HSET', adviser_key, 'state', 'missed', 'since', now, 'call_sid', '', 'offer_id', '')
    else
      become_available()
    end
  end
elseif outcome == 'abandoned' then
  close_offer()
  if owns then
    if was == 'connected' then wrap_up() else become_available() end
  end
end
redis.call('EXPIRE', adviser_key, ttl)
return {call, adviser, product, was, redis.call('HGET', adviser_key, 'state')}
