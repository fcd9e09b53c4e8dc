-- A transferred call takes the head of a line: the transfer's target queue (cold to a queue),
-- or, cold to a colleague, an offer to that adviser at once (who was available: the claim in
-- the same script checked). Also where a call goes back when a transfer's target did not
-- answer. The entry is rewritten (product, who transferred it, the note) and keeps its TTL.
-- KEYS: entry, line marker, target queue, queue index, offer sequence, offer deadlines,
--       call's offer key, target adviser hash (the entry key when the target is a queue)
-- ARGV: call sid, sealed entry, product, entry ttl (s), target adviser ('' for the queue),
--       available-set template, offer template, now (ms), offer deadline (ms), offer ttl (s),
--       the score of a line that is empty
-- Returns {offer id, call sid, adviser, product} for an offer made, {} when the call waits in
-- the line, and {'gone'} when the caller has gone meanwhile.
local function namer(template)
  local before, after = string.match(template, '^(.-){}(.*)$')
  return function(id) return before .. id .. after end
end
local entry, line, queue, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sequence, deadlines, call_offer, adviser_hash = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local call, sealed, product, entry_ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local adviser, available_key, offer_key = ARGV[5], namer(ARGV[6]), namer(ARGV[7])
local now, deadline, offer_ttl = ARGV[8], ARGV[9], ARGV[10]
local left = redis.call('TTL', entry)
if left < 0 then return {'gone'} end
redis.call('SET', entry, sealed, 'EX', math.max(left, 1))
redis.call('SET', line, product, 'EX', entry_ttl)
local head = redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES')
local score = tonumber(ARGV[11])
if head[2] then score = math.min(score, tonumber(head[2]) - 1) end
if adviser == '' or redis.call('HGET', adviser_hash, 'state') ~= 'available' then
  redis.call('ZADD', queue, score, call)
  redis.call('EXPIRE', queue, entry_ttl)
  redis.call('SADD', index, product)
  redis.call('EXPIRE', index, entry_ttl)
  return {}
end
local id = tostring(redis.call('INCR', sequence))
redis.call('EXPIRE', sequence, offer_ttl)
for skill in string.gmatch(redis.call('HGET', adviser_hash, 'skills') or '', '[^,]+') do
  redis.call('ZREM', available_key(skill), adviser)
end
local offer = offer_key(id)
redis.call('HSET', offer, 'call_sid', call, 'adviser', adviser, 'product', product,
  'score', string.format('%.0f', score), 'state', 'offered', 'created', now)
redis.call('EXPIRE', offer, offer_ttl)
redis.call('SET', call_offer, id, 'EX', offer_ttl)
redis.call('ZADD', deadlines, deadline, id)
redis.call('EXPIRE', deadlines, offer_ttl)
redis.call('HSET', adviser_hash, 'state', 'offered', 'since', now, 'call_sid', call, 'offer_id', id)
return {id, call, adviser, product}
