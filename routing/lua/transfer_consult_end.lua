-- A warm transfer's colleague leaves the consult without taking the call (not answered, busy,
-- failed, cancelled, hung up, or the caller gone): their offer ends without touching the
-- caller's place (the call stays with the transferring adviser, never back in a line), they
-- go to 'missed' (did not answer, as for any offer) or 'available', and the call's offer is
-- the transferring adviser's again.
-- KEYS: offer deadlines, the call's offer key, the colleague's offer hash, the colleague's
--       adviser hash, the transferring adviser's offer hash
-- ARGV: the colleague's offer id, the transferring adviser's offer id, 'missed' or
--       'available', now (ms), ttl (s), available-set template
-- Returns {call sid, colleague, product, previous offer state, colleague's state}, or {} when
-- the colleague's offer is gone already.
local deadlines, call_offer, offer, adviser_hash, first_offer = KEYS[1], KEYS[2], KEYS[3],
  KEYS[4], KEYS[5]
local id, first_id, outcome, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local before, after = string.match(ARGV[6], '^(.-){}(.*)$')
local fields = redis.call('HMGET', offer, 'call_sid', 'adviser', 'product', 'state')
local call, adviser, product, was = fields[1], fields[2], fields[3], fields[4]
if not call then return {} end
redis.call('DEL', offer)
redis.call('ZREM', deadlines, id)
if redis.call('GET', call_offer) == id then
  if redis.call('EXISTS', first_offer) == 1 then
    redis.call('SET', call_offer, first_id, 'EX', ttl)
  else
    redis.call('DEL', call_offer)
  end
end
if redis.call('HGET', adviser_hash, 'offer_id') == id then
  if outcome == 'missed' then
    redis.call('HSET', adviser_hash, 'state', 'missed', 'since', now, 'call_sid', '', 'offer_id', '')
  else
    redis.call('HSET', adviser_hash, 'state', 'available', 'since', now, 'call_sid', '',
      'offer_id', '')
    for skill in string.gmatch(redis.call('HGET', adviser_hash, 'skills') or '', '[^,]+') do
      local available = before .. skill .. after
      redis.call('ZADD', available, now, adviser)
      redis.call('EXPIRE', available, ttl)
    end
  end
  redis.call('EXPIRE', adviser_hash, ttl)
end
return {call, adviser, product, was, redis.call('HGET', adviser_hash, 'state')}
