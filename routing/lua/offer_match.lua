-- Pair waiting calls with available advisers, atomically, as often as possible (up to a limit).
-- Each round takes, over the given products, the waiting call with the lowest score (highest
-- priority, then earliest arrival) among products that have an available adviser, and offers
-- it to that product's longest-idle adviser.
-- KEYS: offer sequence, offer deadlines
-- ARGV: templates of the queue, available set, adviser, offer and call's offer keys;
--       now (ms), offer deadline (ms), max rounds, ttl (s), product...
-- Returns {{offer id, call sid, adviser, product}, ...}: the offers made.
local function namer(template)
  local before, after = string.match(template, '^(.-){}(.*)$')
  return function(id) return before .. id .. after end
end
local queue_key, available_key, adviser_key = namer(ARGV[1]), namer(ARGV[2]), namer(ARGV[3])
local offer_key, call_offer_key = namer(ARGV[4]), namer(ARGV[5])
local now, deadline = ARGV[6], ARGV[7]
local rounds, ttl = tonumber(ARGV[8]), tonumber(ARGV[9])
local first_product = 10
local made = {}
for _ = 1, rounds do
  local best_score, best_product = nil, nil
  for i = first_product, #ARGV do
    local product = ARGV[i]
    if redis.call('ZCARD', available_key(product)) > 0 then
      local head = redis.call('ZRANGE', queue_key(product), 0, 0, 'WITHSCORES')
      if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
        best_score, best_product = tonumber(head[2]), product
      end
    end
  end
  if best_product == nil then break end
  local queue = queue_key(best_product)
  local call = redis.call('ZRANGE', queue, 0, 0)[1]
  local adviser = redis.call('ZRANGE', available_key(best_product), 0, 0)[1]
  local adviser_hash = adviser_key(adviser)
  -- The one call that can fail (a damaged counter) comes before any change: a script error
  -- keeps the writes made before it, and must not leave a call or adviser out of every set.
  local id = tostring(redis.call('INCR', KEYS[1]))
  redis.call('ZREM', queue, call)
  for skill in string.gmatch(redis.call('HGET', adviser_hash, 'skills') or '', '[^,]+') do
    redis.call('ZREM', available_key(skill), adviser)
  end
  redis.call('EXPIRE', KEYS[1], ttl)
  local offer = offer_key(id)
  redis.call('HSET', offer, 'call_sid', call, 'adviser', adviser, 'product', best_product,
    'score', string.format('%.0f', best_score), 'state', 'offered', 'created', now)
  redis.call('EXPIRE', offer, ttl)
  redis.call('SET', call_offer_key(call), id, 'EX', ttl)
  redis.call('ZADD', KEYS[2], deadline, id)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('HSET', adviser_hash, 'state', 'offered', 'since', now, 'call_sid', call, 'offer_id', id)
  made[#made + 1] = {id, call, adviser, best_product}
end
return made
