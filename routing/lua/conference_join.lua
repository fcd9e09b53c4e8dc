-- The caller joined the conference of an offer: remember the conference and the caller's leg,
-- and say whether the adviser is to be called in now (once per offer, however often Twilio
-- repeats the join event, and only while the offer is still open).
-- KEYS: the call's conference hash, the offer hash
-- ARGV: offer id, conference name, conference sid, caller's leg (CallSid), ttl (s)
-- Returns 1: call the adviser in; 0: not (done already, or the offer is gone or answered).
local conference, offer = KEYS[1], KEYS[2]
local offer_id, name, sid, caller, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
redis.call('HSET', conference, 'offer', offer_id, 'name', name, 'sid', sid, 'caller', caller)
redis.call('EXPIRE', conference, ttl)
if redis.call('HGET', offer, 'state') ~= 'offered' then return 0 end
if redis.call('HGET', conference, 'dialled_offer') == offer_id then return 0 end
redis.call('HSET', conference, 'dialled_offer', offer_id, 'adviser', '')
return 1
