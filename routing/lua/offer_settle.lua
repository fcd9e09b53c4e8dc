-- Settle an offer:
--   'answered'  -> adviser on_call, offer connected
--   'finished'  -> adviser wrap_up until the given time; offer gone
--   'missed'    -> call back to its place at the head; adviser missed
--   'withdrawn' -> call back to its place; adviser available again (not their fault)
--   'abandoned' -> the caller hung up: call gone; adviser available (or wrap_up if talking)
-- An answered offer joins the call checks (its conversation is asked about when quiet); an
-- offer that closes leaves them.
-- KEYS: offer deadlines, wrap-up ends, calls answered per product, call checks
-- ARGV: templates of the offer, adviser, available set, call's offer, call answered, queue entry
--       and queue keys; offer id, outcome, now (ms), ttl (s), wrap-up end (ms), counter ttl (s),
--       first check of an answered call (ms), ttl of a conversation's offer (s)
-- Returns {call sid, adviser, product, previous offer state, adviser state}, or {} when there is
-- no such offer.
local function namer(template)
  local before, after = string.match(template, '^(.-){}(.*)$')
  return function(id) return before .. id .. after end
end
local offer_key, adviser_key, available_key = namer(ARGV[1]), namer(ARGV[2]), namer(ARGV[3])
local call_offer_key, call_answered_key = namer(ARGV[4]), namer(ARGV[5])
local queue_entry_key, queue_key = namer(ARGV[6]), namer(ARGV[7])
local id, outcome, now, ttl, wrap_end = ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local deadlines, wrap_up_ends = KEYS[1], KEYS[2]
local offer = offer_key(id)
local fields = redis.call('HMGET', offer, 'call_sid', 'adviser', 'product', 'score', 'state')
local call, adviser, product, score, was = fields[1], fields[2], fields[3], fields[4], fields[5]
if not call then return {} end
local adviser_hash = adviser_key(adviser)
local function become_available()
  redis.call('HSET', adviser_hash, 'state', 'available', 'since', now, 'call_sid', '', 'offer_id', '')
  for skill in string.gmatch(redis.call('HGET', adviser_hash, 'skills') or '', '[^,]+') do
    redis.call('ZADD', available_key(skill), now, adviser)
    redis.call('EXPIRE', available_key(skill), ttl)
  end
end
local function close_offer()
  redis.call('DEL', offer)
  -- A warm transfer's colleague may hold the call's offer already (routing/transfers.py).
  if redis.call('GET', call_offer_key(call)) == id then redis.call('DEL', call_offer_key(call)) end
  redis.call('ZREM', deadlines, id)
  redis.call('ZREM', KEYS[4], id)
end
local function wrap_up()
  redis.call('HSET', adviser_hash, 'state', 'wrap_up', 'since', now, 'offer_id', '',
    'wrap_until', wrap_end, 'last_call', call, 'last_product', product or '')
  redis.call('ZADD', wrap_up_ends, wrap_end, adviser)
  redis.call('EXPIRE', wrap_up_ends, ttl)
end
local owns = redis.call('HGET', adviser_hash, 'offer_id') == id
if outcome == 'answered' then
  if was ~= 'offered' then return {call, adviser, product, was, redis.call('HGET', adviser_hash, 'state')} end
  redis.call('HSET', offer, 'state', 'connected', 'connected', now)
  redis.call('SET', call_answered_key(call), '1', 'EX', ttl)
  redis.call('HINCRBY', KEYS[3], product, 1)
  redis.call('EXPIRE', KEYS[3], ARGV[13])
  redis.call('ZREM', deadlines, id)
  -- A conversation may outlast the ring's TTL: its offer must live as long as any call can.
  redis.call('EXPIRE', offer, ARGV[15])
  redis.call('EXPIRE', call_offer_key(call), ARGV[15])
  redis.call('ZADD', KEYS[4], ARGV[14], id)
  redis.call('EXPIRE', KEYS[4], ARGV[15])
  if owns then redis.call('HSET', adviser_hash, 'state', 'on_call', 'since', now) end
elseif outcome == 'finished' then
  close_offer()
  if owns then wrap_up() end
elseif outcome == 'missed' or outcome == 'withdrawn' then
  if was ~= 'offered' then return {call, adviser, product, was, redis.call('HGET', adviser_hash, 'state')} end
  close_offer()
  if redis.call('EXISTS', queue_entry_key(call)) == 1 then
    redis.call('ZADD', queue_key(product), 'NX', score, call)
  end
  if owns then
    if outcome == 'missed' then
      redis.call('HSET', adviser_hash, 'state', 'missed', 'since', now, 'call_sid', '', 'offer_id', '')
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
redis.call('EXPIRE', adviser_hash, ttl)
return {call, adviser, product, was, redis.call('HGET', adviser_hash, 'state')}
