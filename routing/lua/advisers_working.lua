-- How many advisers work a product (its skill, and a state other than offline, break or away),
-- for the caller's expected wait. One count over every adviser serves every product and every
-- instance until the counts' hash expires (a short TTL), so a waitUrl fetch reads one field
-- instead of every adviser; the recount reads the states themselves and so cannot drift.
-- KEYS: advisers set, the counts' hash
-- ARGV: adviser template, product, the counts' ttl (ms; 0: count on every call, keep nothing)
-- Returns the number of advisers working the product.
local advisers, counts = KEYS[1], KEYS[2]
local product, ttl = ARGV[2], tonumber(ARGV[3])
local kept = redis.call('HGET', counts, product)
if kept then return tonumber(kept) end
-- The field '' (no product has that name) marks the hash as counted: a product nobody works
-- has no field of its own.
if redis.call('HEXISTS', counts, '') == 1 then return 0 end
local before, after = string.match(ARGV[1], '^(.-){}(.*)$')
local tally = {}
for _, name in ipairs(redis.call('SMEMBERS', advisers)) do
  local fields = redis.call('HMGET', before .. name .. after, 'state', 'skills')
  local state = fields[1]
  if state and state ~= 'offline' and state ~= 'break' and state ~= 'away' then
    local seen = {}
    for skill in string.gmatch(fields[2] or '', '[^,]+') do
      if not seen[skill] then
        seen[skill] = true
        tally[skill] = (tally[skill] or 0) + 1
      end
    end
  end
end
if ttl > 0 then
  local row = {'', 0}
  for skill, count in pairs(tally) do
    row[#row + 1] = skill
    row[#row + 1] = count
  end
  redis.call('HSET', counts, unpack(row))
  redis.call('PEXPIRE', counts, ttl)
end
return tally[product] or 0
