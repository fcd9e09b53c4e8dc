"""Call sessions in Redis: one hash per CallSid (seq + JSON), written compare-and-set.

The session JSON is sealed (ivr/sealing.py): it holds the caller's number. A step is committed
only if the session is still at the seq the request was answered from, in
one Lua script that also keeps the TwiML reply for that seq. So when Twilio retries a webhook,
or two instances get the same request, exactly one advances the call and the other answers with
the stored reply.
"""

from __future__ import annotations

from redis.asyncio import Redis

from ivr.sealing import Sealer
from ivr.session import CallSession
from routing import keys

NEW_CALL = -1

_COMMIT = """
-- KEYS: session, reply, ended marker
-- ARGV: expected seq (-1: new call), new seq, data, ttl, reply, reply ttl
local current = redis.call('HGET', KEYS[1], 'seq')
local expected = tonumber(ARGV[1])
if expected < 0 then
  if current or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
elseif (not current) or tonumber(current) ~= expected then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
return 1
"""


class SessionStore:
    def __init__(self, redis: Redis, sealer: Sealer, *, ttl: int = keys.SESSION_TTL) -> None:
        self._redis = redis
        self._sealer = sealer
        self._ttl = ttl
        self._commit = redis.register_script(_COMMIT)

    async def load(self, call_sid: str) -> CallSession | None:
        data = await self._redis.hget(keys.session(call_sid), "data")
        return CallSession.model_validate_json(self._sealer.open(str(data))) if data else None

    async def commit(self, session: CallSession, *, answered_seq: int, reply: str) -> bool:
        """Save `session` (already at its next seq) if nobody else answered `answered_seq`."""
        done = await self._commit(
            keys=[
                keys.session(session.call_sid),
                keys.reply(session.call_sid, max(answered_seq, 0)),
                keys.ended(session.call_sid),
            ],
            args=[
                answered_seq,
                session.seq,
                self._sealer.seal(session.model_dump_json()),
                self._ttl,
                reply,
                keys.REPLY_TTL,
            ],
        )
        return bool(done)

    async def reply(self, call_sid: str, seq: int) -> str | None:
        value = await self._redis.get(keys.reply(call_sid, seq))
        return str(value) if value is not None else None

    async def end(self, call_sid: str) -> CallSession | None:
        """Forget a finished call; returns what was known about it."""
        session = await self.load(call_sid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.session(call_sid))
            pipe.set(keys.ended(call_sid), "1", ex=keys.ENDED_TTL)
            await pipe.execute()
        return session

    async def has_ended(self, call_sid: str) -> bool:
        return bool(await self._redis.exists(keys.ended(call_sid)))
