"""Call sessions in Redis: one hash per CallSid (seq + JSON), written compare-and-set.

The session JSON and the stored replies are sealed (routing/sealing.py): the session holds the
caller's number, a reply may tell a verified caller their application's status. A step is committed
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

from flows.errors import ErrorKind, KccError
from ivr.session import CallSession
from routing import keys
from routing.scripts import LuaScript, Outcomes, Refused, ScriptRunner, ScriptStep, as_int
from routing.sealing import SealBroken, Sealer

NEW_CALL = -1
# Calls whose last step this instance answered, kept to answer their next step without reading
# Redis. Far more than this contact centre ever has in its menus at once; the oldest go first.
RECENT_SESSIONS = 4096
log = logging.getLogger(__name__)


class StaleFlow(KccError):
    """A new call was built on a flow version that is not (or no longer known to be) live."""

    code = "stale_flow"
    kind = ErrorKind.CONFLICT

    def __init__(self, *, pointer_lost: bool) -> None:
        super().__init__(
            "the live flow pointer is gone" if pointer_lost else "a newer flow is live"
        )
        self.pointer_lost = pointer_lost


_COMMIT = LuaScript.named("session_commit")
_END = LuaScript.named("session_end")


class SessionStore:
    def __init__(self, redis: Redis, sealer: Sealer, *, ttl: int = keys.SESSION_TTL) -> None:
        self._redis = redis
        self._sealer = sealer
        self._ttl = ttl
        self._scripts = ScriptRunner(redis)
        # oldest first; with the sealed text committed for it, which `end` compares
        self._recent: dict[str, tuple[CallSession, str]] = {}

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
        if recent is not None and recent[0].seq == seq:
            return recent[0]
        return await self.load(call_sid)

    def _open(self, data: Any) -> CallSession | None:
        return CallSession.model_validate_json(self._sealer.open(str(data))) if data else None

    async def commit(
        self,
        session: CallSession,
        *,
        answered_seq: int,
        reply: str,
        then: Sequence[ScriptStep[Any]] = (),
        live_pointer: str | None = None,
    ) -> Outcomes | None:
        """Save `session` (already at its next seq) if nobody else answered `answered_seq`.

        None when another delivery committed first; else what the steps `then` answered (they
        run only after a commit, in the same atomic script). A new call given `live_pointer`
        (the flow version it was built on) is committed only if that is still the live one in
        Redis (no extra round trip): else StaleFlow.
        """
        session_keys = [
            keys.session(session.call_sid),
            keys.reply(session.call_sid, max(answered_seq, 0)),
            keys.ended(session.call_sid),
            keys.calls_in_menu(),
        ]
        sealed = self._sealer.seal(session.model_dump_json())
        args: list[str | int | float] = [
            answered_seq,
            session.seq,
            sealed,
            self._ttl,
            # Sealed like the session: a verified caller's reply names their application.
            self._sealer.seal(reply),
            keys.REPLY_TTL,
            session.call_sid,
        ]
        if answered_seq == NEW_CALL and live_pointer is not None:
            session_keys.append(keys.live_flow(session.flow))
            args.append(live_pointer)
        try:
            done = await self._scripts.run(ScriptStep(_COMMIT, session_keys, args, as_int), *then)
        except Refused as refused:
            if refused.reason == 0:
                return None
            raise StaleFlow(pointer_lost=refused.reason == -2) from None
        self._remember(session, sealed)
        return done

    def _remember(self, session: CallSession, sealed: str) -> None:
        recent = self._recent
        recent.pop(session.call_sid, None)
        recent[session.call_sid] = (session, sealed)
        if len(recent) > RECENT_SESSIONS:
            del recent[next(iter(recent))]

    async def reply(self, call_sid: str, seq: int) -> str | None:
        value = await self._redis.get(keys.reply(call_sid, seq))
        if value is None:
            return None
        try:
            return self._sealer.open(str(value))
        except SealBroken:  # kept before replies were sealed, or another key: answer afresh
            log.warning("a stored reply could not be opened")
            return None

    async def end(
        self, call_sid: str, *, then: Sequence[ScriptStep[Any]] = ()
    ) -> tuple[CallSession | None, Outcomes]:
        """Forget a finished call: what was known about it, and what the steps `then` answered
        (read in the same script, right after the ended marker was set)."""
        recent = self._recent.pop(call_sid, None)
        end = ScriptStep(
            _END,
            keys=[keys.session(call_sid), keys.ended(call_sid), keys.calls_in_menu()],
            args=[keys.ENDED_TTL, call_sid],
            decode=lambda data: data,
        )
        done = await self._scripts.run(end, *then)
        data = done.of(end)
        if recent is not None and data == recent[1]:
            # Redis held exactly what this instance committed last: its copy, without opening
            # (unsealing and validating) the same text again.
            return recent[0], done
        try:
            return self._open(data), done
        except SealBroken:  # another secret key, or tampered with: still clean up the rest
            log.error("a finished call's session could not be opened")
            return None, done

    async def has_ended(self, call_sid: str) -> bool:
        return bool(await self._redis.exists(keys.ended(call_sid)))
