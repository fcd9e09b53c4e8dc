-- Claim a call for a transfer: one transfer of a call at a time (two at once: one wins).
-- Refuses before it writes anything (routing/scripts.py chains it before the moves).
-- KEYS: the call's transfer hash, the transferring adviser's offer hash, the target adviser's
--       hash (the transferring adviser's own hash when the target is not an adviser)
-- ARGV: offer id, transferring adviser, mode, kind, target, now (ms), ttl (s), the number or
--       device the target is called on ('' for a queue), what it hears on answering (a URL, or '')
-- Returns 1; refuses with 1: a transfer of this call is in progress, 2: the adviser has no
-- conversation with this call, 3: the target adviser is not signed in and available.
local transfer, offer, target_hash = KEYS[1], KEYS[2], KEYS[3]
local offer_id, from, mode, kind, target = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', transfer) == 1 then return {'refused', 1} end
local held = redis.call('HMGET', offer, 'state', 'adviser')
if held[1] ~= 'connected' or held[2] ~= from then return {'refused', 2} end
if kind == 'adviser' then
  if target == from or redis.call('HGET', target_hash, 'state') ~= 'available' then
    return {'refused', 3}
  end
end
redis.call('HSET', transfer, 'offer', offer_id, 'from', from, 'mode', mode, 'kind', kind,
  'target', target, 'since', ARGV[6], 'state', 'started', 'to', ARGV[8], 'announce', ARGV[9])
redis.call('EXPIRE', transfer, ARGV[7])
return 1
