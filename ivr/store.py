"""Call sessions in Redis: one hash per CallSid (seq + JSON), written compare-and-set.

The session JSON is sealed (ivr/sealing.py): it holds the caller's number. A step is committed
only if the session is still at the seq the request was answered from, in
one Lua script that also keeps the TwiML reply for that seq. So when Twilio retries a webhook,
or two instances get the same request, exactly one advances the call and the other answers with
the stored reply. Work that must follow a commit (queueing the call, matching it with an
adviser) can run in the same script (`then`): one round trip, and nothing in between.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from ivr.session import CallSession
from routing import keys
from routing.scripts import Refused, ScriptChain, ScriptStep
from routing.sealing import SealBroken, Sealer

NEW_CALL = -1
# Calls whose last step this instance answered, kept to answer their next step without reading
# Redis. Far more than this contact centre ever has in its menus at once; the oldest go first.
RECENT_SESSIONS = 4096
log = logging.getLogger(__name__)


class StaleFlow(Exception):
    """A new call was built on a flow version that is not (or no longer known to be) live."""

    def __init__(self, *, pointer_lost: bool) -> None:
        super().__init__(
            "the live flow pointer is gone" if pointer_lost else "a newer flow is live"
        )
        self.pointer_lost = pointer_lost


_COMMIT = """
-- KEYS: session, reply, ended marker[, live flow pointer]
-- ARGV: expected seq (-1: new call), new seq, data, ttl, reply, reply ttl[, live pointer]
-- Returns 1 committed, 0 another delivery was first (or the call ended), -1 the call was
-- started on a flow version that is no longer live, -2 nobody knows the live version.
local current = redis.call('HGET', KEYS[1], 'seq')
local expected = tonumber(ARGV[1])
if expected < 0 then
  if current or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  if KEYS[4] then
    local live = redis.call('GET', KEYS[4])
    if not live then return -2 end
    if live ~= ARGV[7] then return -1 end
  end
elseif (not current) or tonumber(current) ~= expected then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
return 1
"""

_END = """
-- KEYS: session, ended marker
-- ARGV: ended marker ttl
local data = redis.call('HGET', KEYS[1], 'data')
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return data
"""


class SessionStore:
    def __init__(self, redis: Redis, sealer: Sealer, *, ttl: int = keys.SESSION_TTL) -> None:
        self._redis = redis
        self._sealer = sealer
        self._ttl = ttl
        self._chain = ScriptChain(redis)
        self._recent: dict[str, CallSession] = {}  # oldest first

    async def load(self, call_sid: str) -> CallSession | None:
        data = await self._redis.hget(keys.session(call_sid), "data")
        return self._open(data)

    async def load_for_step(self, call_sid: str, seq: int) -> CallSession | None:
        """The session to answer step `seq` from. When this instance committed the step before,
        its copy is used without a read: it is exactly what Redis holds unless another instance
        moved the call on since, and then the commit's compare-and-set refuses it (the caller
        gets the stored reply, as for any retry). The copy is taken, not shared: the step
        changes it, and only a successful commit keeps it again."""
        recent = self._recent.pop(call_sid, None)
        if recent is not None and recent.seq == seq:
            return recent
        return await self.load(call_sid)

    def _open(self, data: Any) -> CallSession | None:
        return CallSession.model_validate_json(self._sealer.open(str(data))) if data else None

    async def commit(
        self,
        session: CallSession,
        *,
        answered_seq: int,
        reply: str,
        then: Sequence[ScriptStep] = (),
        live_pointer: str | None = None,
    ) -> list[Any] | None:
        """Save `session` (already at its next seq) if nobody else answered `answered_seq`.

        None when another delivery committed first; else what each of `then` returned (they
        run only after a commit, in the same atomic script). A new call given `live_pointer`
        (the flow version it was built on) is committed only if that is still the live one in
        Redis (no extra round trip): else StaleFlow.
        """
        session_keys = [
            keys.session(session.call_sid),
            keys.reply(session.call_sid, max(answered_seq, 0)),
            keys.ended(session.call_sid),
        ]
        args: list[str | int | float] = [
            answered_seq,
            session.seq,
            self._sealer.seal(session.model_dump_json()),
            self._ttl,
            reply,
            keys.REPLY_TTL,
        ]
        if answered_seq == NEW_CALL and live_pointer is not None:
            session_keys.append(keys.live_flow(session.flow))
            args.append(live_pointer)
        try:
            done = await self._chain.run([ScriptStep(_COMMIT, session_keys, args), *then])
        except Refused as refused:
            if refused.code == 0:
                return None
            raise StaleFlow(pointer_lost=refused.code == -2) from None
        self._remember(session)
        return done[1:]

    def _remember(self, session: CallSession) -> None:
        recent = self._recent
        recent.pop(session.call_sid, None)
        recent[session.call_sid] = session
        if len(recent) > RECENT_SESSIONS:
            del recent[next(iter(recent))]

    async def reply(self, call_sid: str, seq: int) -> str | None:
        value = await self._redis.get(keys.reply(call_sid, seq))
        return str(value) if value is not None else None

    async def end(
        self, call_sid: str, *, then: Sequence[ScriptStep] = ()
    ) -> tuple[CallSession | None, list[Any]]:
        """Forget a finished call: what was known about it, and what each of `then` returned
        (read in the same script, right after the ended marker was set)."""
        self._recent.pop(call_sid, None)
        end = ScriptStep(
            _END, keys=[keys.session(call_sid), keys.ended(call_sid)], args=[keys.ENDED_TTL]
        )
        done = await self._chain.run([end, *then])
        try:
            return self._open(done[0]), done[1:]
        except SealBroken:  # another secret key, or tampered with: still clean up the rest
            log.error("a finished call's session could not be opened")
            return None, done[1:]

    async def has_ended(self, call_sid: str) -> bool:
        return bool(await self._redis.exists(keys.ended(call_sid)))
