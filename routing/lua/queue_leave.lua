-- The status callback of a waiting caller: the entry, and the call out of its line.
-- KEYS: entry, line marker, then keys any of which, if it exists, means: not now (routing has
--       the call)
-- ARGV: call sid, queue template, the entry ttl (s) of a call that did not ask for a callback
-- Returns {entry or '', 1 if the call was taken out of its line and the entry deleted}.
local raw = redis.call('GET', KEYS[1])
if not raw then return {'', 0} end
local product = redis.call('GET', KEYS[2])
if not product then return {raw, 0} end
-- A callback keeps its place. Asking for one drops the line marker, but an instance of the
-- version before the marker (a rolling upgrade) does not: every version gives the entry the
-- longer callback ttl, though.
if redis.call('TTL', KEYS[1]) > tonumber(ARGV[3]) then return {raw, 0} end
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {raw, 0} end
end
local before, after = string.match(ARGV[2], '^(.-){}(.*)$')
redis.call('ZREM', before .. product .. after, ARGV[1])
redis.call('DEL', KEYS[1], KEYS[2])
return {raw, 1}
