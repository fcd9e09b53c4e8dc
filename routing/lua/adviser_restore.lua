-- After Redis was lost: an adviser's state as the database last knew it (made safe by the
-- caller of this script), unless Redis knows the adviser again already (it is newer).
-- KEYS: adviser hash, advisers set
-- ARGV: available-set template, adviser name, state, since (ms), skills (comma-separated),
--       device, ttl (s)
-- Returns 1 when restored, 0 when Redis knew the adviser.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local before, after = string.match(ARGV[1], '^(.-){}(.*)$')
local name, state, since, skills, ttl = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7]
redis.call('HSET', KEYS[1], 'state', state, 'since', since, 'skills', skills, 'device', ARGV[6],
  'call_sid', '', 'offer_id', '')
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('SADD', KEYS[2], name)
redis.call('EXPIRE', KEYS[2], ttl)
if state == 'available' then
  for skill in string.gmatch(skills, '[^,]+') do
    redis.call('ZADD', before .. skill .. after, since, name)
    redis.call('EXPIRE', before .. skill .. after, ttl)
  end
end
return 1
