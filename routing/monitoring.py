"""Supervisors monitoring a conversation: listen (muted), whisper (coaching the adviser: only
the adviser hears them) or barge in (a full participant).

The supervisor's own device is called into the conversation's conference as a participant
labelled `supervisor:NAME` (labels are unique per conference); switching mode updates that
participant, leaving removes it. Each supervisor has at most one session per call, kept in
Redis (`keys.call_monitors`) and changed only by compare-and-set scripts, so two requests at
once cannot both start or both change it.
Every change is handed to `on_change` (the audit log in SQL). The session follows the
supervisor's leg through its participant status callback (`leg_status`) and ends when the
conversation does (`conversation_over`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, cast

from pydantic import BaseModel
from redis.asyncio import Redis

from flows.errors import ErrorKind, KccError
from routing import keys
from routing.board import AdviserBoard, OfferState
from routing.conferences import CallConferences
from routing.scripts import LuaScript, ScriptRunner, ScriptStep
from routing.telephony import NewParticipant, ParticipantChange, Telephony, TelephonyError

log = logging.getLogger(__name__)

_START = LuaScript.named("monitor_start")
_REPLACE = LuaScript.named("monitor_replace")
RING_SECONDS = 20  # how long the supervisor's device may ring
CAS_TRIES = 5  # a session changed by a callback between read and write: read it again
FAILED_LEG = frozenset({"no-answer", "busy", "failed", "canceled"})


class MonitorMode(StrEnum):
    LISTEN = "listen"  # muted: hears both, heard by nobody
    WHISPER = "whisper"  # coaching the adviser: only the adviser hears them
    BARGE = "barge"  # a full participant: everyone hears them


class MonitorState(StrEnum):
    RINGING = "ringing"  # the supervisor's device is being called into the conference
    ACTIVE = "active"  # their device answered: they are in the conference
    ENDED = "ended"  # they left, or the conversation ended
    FAILED = "failed"  # their device did not answer, was busy, or could not be called


LIVE = frozenset({MonitorState.RINGING, MonitorState.ACTIVE})


class EndReason(StrEnum):
    LEFT = "left"  # the supervisor stopped (DELETE)
    HUNG_UP = "hung_up"  # the supervisor's own phone hung up
    CALL_ENDED = "call_ended"  # the conversation ended
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"


class CallUnknown(KccError):
    """No conversation in progress (in a conference) has this CallSid."""

    code = "call_unknown"
    kind = ErrorKind.NOT_FOUND


class CallEnded(KccError):
    """The conversation ended while the monitor request was being carried out."""

    code = "call_ended"
    kind = ErrorKind.CONFLICT


class NotMonitoring(KccError):
    """The supervisor has no live monitor session of this call."""

    code = "not_monitoring"
    kind = ErrorKind.NOT_FOUND


class MonitorNotReady(KccError):
    """The supervisor's device is still being called in: try the change again in a moment."""

    code = "monitor_not_ready"
    kind = ErrorKind.CONFLICT


class MonitorFailed(KccError):
    """Twilio could not call the supervisor's device in, or change it (nothing is left half)."""

    code = "monitor_failed"
    kind = ErrorKind.UPSTREAM


class MonitorSession(BaseModel):
    """One supervisor's monitoring of one call, from the request to its end."""

    id: str
    rev: int = 0  # bumped by every change: the compare-and-set's version
    supervisor: str
    call_sid: str
    adviser: str
    product: str
    device: str
    mode: MonitorMode
    state: MonitorState
    leg: str | None = None  # the supervisor's CallSid in the conference
    started_ms: int
    answered_ms: int | None = None
    ended_ms: int | None = None
    reason: EndReason | None = None
    modes: list[tuple[MonitorMode, int]]  # every mode with when it began (ms)

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def marker(self) -> str:
        return f"{self.id}:{self.rev}" if self.live else ""


def participant_label(supervisor: str) -> str:
    """A supervisor's leg in a conference: Twilio refuses a label another participant of the
    conference has (error 16026), so two supervisors on one call need labels of their own."""
    return f"supervisor:{supervisor}"


class MonitorUrls(Protocol):
    def monitor_status(self, call_sid: str, supervisor: str, session_id: str) -> str:
        """The participant status callback of a supervisor's leg."""
        ...


@dataclass(frozen=True)
class Conversation:
    """A call in progress with an adviser, in a conference, as monitoring needs it."""

    call_sid: str
    adviser: str
    product: str
    conference_sid: str
    adviser_leg: str | None
    called: str | None


SessionChanged = Callable[[MonitorSession], Awaitable[None]]


def _change_for(mode: MonitorMode, adviser_leg: str | None) -> ParticipantChange:
    if mode is MonitorMode.WHISPER:
        return ParticipantChange(muted=False, coaching=True, call_sid_to_coach=adviser_leg)
    return ParticipantChange(muted=mode is MonitorMode.LISTEN, coaching=False)


def _decode_start(raw: Any) -> tuple[bool, MonitorSession]:
    created, session = raw
    return bool(int(created)), MonitorSession.model_validate_json(session)


def _decode_replace(raw: Any) -> MonitorSession | None:
    replaced, current = raw
    if int(replaced):
        return None
    return MonitorSession.model_validate_json(current) if current else None


@dataclass
class Monitors:
    redis: Redis
    board: AdviserBoard
    conferences: CallConferences
    telephony: Telephony
    urls: MonitorUrls
    now_ms: Callable[[], int]
    caller_id: str | None = None
    on_change: SessionChanged | None = None

    def __post_init__(self) -> None:
        self._scripts = ScriptRunner(self.redis)

    # -- reading ---------------------------------------------------------------------------

    async def conversation(self, call_sid: str) -> Conversation | None:
        """The conversation with this CallSid while an adviser talks in it, in a conference."""
        state = await self.board.call_state(call_sid)
        offer = await self.board.offer(state.offer_id) if state.offer_id else None
        if offer is None or offer.state is not OfferState.CONNECTED:
            return None
        conference = await self.conferences.view(call_sid)
        if conference is None or not conference.sid or not conference.caller_leg:
            return None
        return Conversation(
            call_sid=call_sid,
            adviser=offer.adviser,
            product=offer.product,
            conference_sid=conference.sid,
            adviser_leg=conference.adviser_leg,
            called=conference.called,
        )

    async def sessions(self, call_sid: str) -> dict[str, MonitorSession]:
        """Every supervisor's session of the call (live, or the last one's end), by name."""
        raw = cast(dict[str, str], await self.redis.hgetall(keys.call_monitors(call_sid)))
        return {
            name: MonitorSession.model_validate_json(value)
            for name, value in raw.items()
            if "|" not in name
        }

    async def session(self, call_sid: str, supervisor: str) -> MonitorSession | None:
        value = cast(str | None, await self.redis.hget(keys.call_monitors(call_sid), supervisor))
        return MonitorSession.model_validate_json(value) if value else None

    # -- the supervisor's requests ----------------------------------------------------------

    async def monitor(
        self, supervisor: str, device: str, call_sid: str, mode: MonitorMode
    ) -> MonitorSession:
        """Start monitoring the call in `mode`, or switch a live session to `mode`."""
        talk = await self.conversation(call_sid)
        if talk is None:
            raise CallUnknown(f"no conversation in progress has CallSid {call_sid}")
        if mode is MonitorMode.WHISPER and not talk.adviser_leg:
            raise MonitorNotReady("the adviser's phone is not in the conversation yet")
        now = self.now_ms()
        new = MonitorSession(
            id=secrets.token_hex(8),
            supervisor=supervisor,
            call_sid=call_sid,
            adviser=talk.adviser,
            product=talk.product,
            device=device,
            mode=mode,
            state=MonitorState.RINGING,
            started_ms=now,
            modes=[(mode, now)],
        )
        created, session = await self._scripts.run_one(
            ScriptStep(
                _START,
                keys=[keys.call_monitors(call_sid)],
                args=[supervisor, new.model_dump_json(), new.marker(), keys.MONITOR_TTL],
                decode=_decode_start,
            )
        )
        if not created:
            return await self._switch(session, mode, talk)
        await self._changed(session)
        return await self._call_in(session, talk)

    async def stop(self, supervisor: str, call_sid: str) -> MonitorSession:
        """The supervisor leaves: their device is taken out of the conference."""
        session = await self.session(call_sid, supervisor)
        if session is None or not session.live:
            raise NotMonitoring(f"{supervisor} is not monitoring {call_sid}")
        ended = await self._end(session, MonitorState.ENDED, EndReason.LEFT)
        talk = await self.conversation(call_sid)
        if ended.leg and talk is not None:
            await self._quietly(self.telephony.remove_participant, talk.conference_sid, ended.leg)
        elif ended.leg:
            await self._quietly(self.telephony.hang_up, ended.leg)
        return ended

    # -- what Twilio and routing tell us ------------------------------------------------------

    async def leg_status(
        self, call_sid: str, supervisor: str, session_id: str, leg: str, call_status: str
    ) -> None:
        """The participant status callback of a supervisor's leg."""
        session = await self.session(call_sid, supervisor)
        if session is None or session.id != session_id or not session.live:
            return  # a late callback of a session that has ended
        if call_status in ("in-progress", "answered"):
            await self._update(
                session,
                lambda s: s.model_copy(
                    update={
                        "state": MonitorState.ACTIVE,
                        "answered_ms": s.answered_ms or self.now_ms(),
                        "leg": s.leg or leg or None,
                    }
                ),
            )
        elif call_status in FAILED_LEG:
            await self._end(session, MonitorState.FAILED, EndReason(call_status))
        elif call_status == "completed" and session.state is MonitorState.RINGING:
            await self._end(session, MonitorState.FAILED, EndReason.NO_ANSWER)  # declined
        elif call_status == "completed":
            gone = await self.conversation(call_sid) is None
            await self._end(
                session, MonitorState.ENDED, EndReason.CALL_ENDED if gone else EndReason.HUNG_UP
            )

    async def conversation_over(self, call_sid: str) -> None:
        """The conversation ended: every live session of it ends, and its leg hangs up."""
        for session in (await self.sessions(call_sid)).values():
            if session.live:
                ended = await self._end(session, MonitorState.ENDED, EndReason.CALL_ENDED)
                if ended.leg:
                    await self._quietly(self.telephony.hang_up, ended.leg)

    # -- helpers -----------------------------------------------------------------------------

    async def _call_in(self, session: MonitorSession, talk: Conversation) -> MonitorSession:
        coach = talk.adviser_leg if session.mode is MonitorMode.WHISPER else None
        try:
            leg = await self.telephony.add_participant(
                talk.conference_sid,
                NewParticipant(
                    to=session.device,
                    from_=self.caller_id or talk.called or "",
                    label=participant_label(session.supervisor),
                    timeout=RING_SECONDS,
                    status_callback=self.urls.monitor_status(
                        session.call_sid, session.supervisor, session.id
                    ),
                    start_conference_on_enter=False,  # joining never starts anything
                    end_conference_on_exit=False,
                    muted=session.mode is MonitorMode.LISTEN,
                    call_sid_to_coach=coach,
                ),
            )
        except TelephonyError as exc:
            await self._end(session, MonitorState.FAILED, EndReason.FAILED)
            if await self.conversation(session.call_sid) is None:
                raise CallEnded("the conversation ended meanwhile") from None
            raise MonitorFailed(f"could not call {session.supervisor} in: {exc.message}") from None
        current = await self._update(session, lambda s: s.model_copy(update={"leg": s.leg or leg}))
        if await self.conversation(session.call_sid) is None:
            # The conversation ended while the device was called: nothing may stay behind.
            await self._quietly(self.telephony.hang_up, leg)
            await self._end(current, MonitorState.ENDED, EndReason.CALL_ENDED)
            raise CallEnded("the conversation ended meanwhile")
        return current

    async def _switch(
        self, session: MonitorSession, mode: MonitorMode, talk: Conversation
    ) -> MonitorSession:
        if session.mode is mode:
            return session
        if session.leg is None:
            raise MonitorNotReady("the supervisor's device is still being called in")
        try:
            await self.telephony.update_participant(
                talk.conference_sid, session.leg, _change_for(mode, talk.adviser_leg)
            )
        except TelephonyError as exc:
            if await self.conversation(session.call_sid) is None:
                raise CallEnded("the conversation ended meanwhile") from None
            raise MonitorFailed(f"could not change the mode: {exc.message}") from None
        now = self.now_ms()
        return await self._update(
            session,
            lambda s: s.model_copy(update={"mode": mode, "modes": [*s.modes, (mode, now)]}),
        )

    async def _end(
        self, session: MonitorSession, state: MonitorState, reason: EndReason
    ) -> MonitorSession:
        now = self.now_ms()
        return await self._update(
            session,
            lambda s: s.model_copy(update={"state": state, "reason": reason, "ended_ms": now}),
        )

    async def _update(
        self, session: MonitorSession, change: Callable[[MonitorSession], MonitorSession]
    ) -> MonitorSession:
        """Apply `change` to the live session (read again when it changed meanwhile). A session
        that ended meanwhile is answered as it ended."""
        current: MonitorSession | None = session
        for _ in range(CAS_TRIES):
            if current is None or current.id != session.id or not current.live:
                return current if current is not None and current.id == session.id else session
            new = change(current).model_copy(update={"rev": current.rev + 1})
            found = await self._scripts.run_one(
                ScriptStep(
                    _REPLACE,
                    keys=[keys.call_monitors(session.call_sid)],
                    args=[
                        session.supervisor,
                        current.marker(),
                        new.model_dump_json(),
                        new.marker(),
                        keys.MONITOR_TTL,
                    ],
                    decode=_decode_replace,
                )
            )
            if found is None:
                await self._changed(new)
                return new
            current = found
        raise RuntimeError("a monitor session kept changing")

    async def _changed(self, session: MonitorSession) -> None:
        log.info(
            "monitor session",
            extra={
                "call_sid": session.call_sid,
                "supervisor": session.supervisor,
                "mode": session.mode.value,
                "state": session.state.value,
            },
        )
        if self.on_change is not None:
            await self.on_change(session)

    async def _quietly(self, action: Callable[..., Awaitable[None]], *args: str) -> None:
        """A leg Twilio may have ended already: not an error."""
        try:
            await action(*args)
        except TelephonyError as exc:
            log.info("monitor clean-up not needed or failed", extra={"permanent": exc.permanent})
