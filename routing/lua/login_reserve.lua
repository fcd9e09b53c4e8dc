-- Staff sign-in guard: checks both limits and counts the attempt in one step, so guesses sent at
-- the same moment cannot all slip under a limit. The attempt counts as a failure until the
-- password is found right (login_settle.lua gives it back then).
-- KEYS: the account's attempts, the client address' attempts
-- ARGV: account limit, address limit, window (s)
-- Returns 1 (go ahead), or refuses with the seconds until the full counter's window ends.
local limits = {tonumber(ARGV[1]), tonumber(ARGV[2])}
for i = 1, 2 do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= limits[i] then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then
      redis.call('EXPIRE', KEYS[i], ARGV[3])
      ttl = tonumber(ARGV[3])
    end
    return {'refused', ttl}
  end
end
for i = 1, 2 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[3]) end
end
return 1
