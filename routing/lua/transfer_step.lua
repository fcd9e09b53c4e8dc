-- Move a transfer on, once: from one of the states given to the next (a repeated callback, or
-- a cancel racing the target's answer, changes nothing the second time). A final step deletes
-- the transfer (the lock) so the call may be transferred again.
-- KEYS: the call's transfer hash
-- ARGV: the states it may be in (comma-separated), the next state ('' deletes it), the
--       target's CallSid to remember ('' keeps it), ttl (s)
-- Returns the transfer's fields {offer, from, mode, kind, target, since, state, leg, to,
-- announce} as
-- they were, or {} when it was in none of those states (or there is none).
local transfer = KEYS[1]
local fields = redis.call('HMGET', transfer, 'offer', 'from', 'mode', 'kind', 'target', 'since',
  'state', 'leg', 'to', 'announce')
if not fields[7] then return {} end
local allowed = false
for state in string.gmatch(ARGV[1], '[^,]+') do
  if state == fields[7] then allowed = true end
end
if not allowed then return {} end
if ARGV[2] == '' then
  redis.call('DEL', transfer)
else
  redis.call('HSET', transfer, 'state', ARGV[2])
  if ARGV[3] ~= '' then redis.call('HSET', transfer, 'leg', ARGV[3]) end
  redis.call('EXPIRE', transfer, ARGV[4])
end
for i = 1, 10 do if not fields[i] then fields[i] = '' end end
return fields
