-- Pair waiting calls with available advisers, atomically, as often as possible (up to a limit).
-- Each round takes, over the given products, the waiting call with the lowest score (highest
-- priority, then earliest arrival) among products that have an available adviser, and offers
-- it to that product's longest-idle adviser.
-- ARGV: prefix, now (ms), offer deadline (ms), max rounds, ttl (s), product...
local prefix, now, deadline = ARGV[1], ARGV[2], ARGV[3]
local rounds, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local made = {}
for _ = 1, rounds do
  local best_score, best_product = nil, nil
  for i = 6, #ARGV do
    local product = ARGV[i]
    if redis.call('ZCARD', prefix .. 'available:' .. product) > 0 then
      local head = redis.call('ZRANGE', prefix .. 'queue:' .. product, 0, 0, 'WITHSCORES')
      if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
        best_score, best_product = tonumber(head[2]), product
      end
    end
  end
  if best_product == nil then break end
  local queue = prefix .. 'queue:' .. best_product
  local call = redis.call('ZRANGE', queue, 0, 0)[1]
  local adviser = redis.call('ZRANGE', prefix .. 'available:' .. best_product, 0, 0)[1]
  local adviser_key = prefix .. 'adviser:' .. adviser
  -- The one call that can fail (a damaged counter) comes before any change: a script error
  -- keeps the writes made before it, and must not leave a call or adviser out of every set.
  local id = tostring(redis.call('INCR', prefix .. 'offer-seq'))
  redis.call('ZREM', queue, call)
  for skill in string.gmatch(redis.call('HGET', adviser_key, 'skills') or '', '[^,]+') do
    redis.call('ZREM', prefix .. 'available:' .. skill, adviser)
  end
  redis.call('EXPIRE', prefix .. 'offer-seq', ttl)
  local offer = prefix .. 'offer:' .. id
  redis.call('HSET', offer, 'call_sid', call, 'adviser', adviser, 'product', best_product,
    'score', string.format('%.0f', best_score), 'state', 'offered', 'created', now)
  redis.call('EXPIRE', offer, ttl)
  redis.call('SET', prefix .. 'call:' .. call .. ':offer', id, 'EX', ttl)
  redis.call('ZADD', prefix .. 'offer-deadlines', deadline, id)
  redis.call('EXPIRE', prefix .. 'offer-deadlines', ttl)
  redis.call('HSET', adviser_key, 'state', 'offered', 'since', now, 'call_sid', call, 'offer_id', id)
  made[#made + 1] = {id, call, adviser, best_product}
end
return made
