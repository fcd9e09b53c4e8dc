-- The conversations due for a check, claimed: each one's next check moves on by the interval
-- in the same script, so of several instances ticking at once only one asks Twilio about it.
-- KEYS: call checks
-- ARGV: now (ms), next check (ms), at most this many
-- Returns the offer ids claimed.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
end
return due
