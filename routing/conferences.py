"""The conference each conversation takes place in, as routing remembers it (Redis).

Every conversation between a caller and an adviser is a Twilio conference named after the
caller's call (`kcc-<CallSid>`). Twilio's Participants resource only lists who is in it now, so
routing keeps its own record: the conference's SID, each participant's CallSid, and the time the
caller was held (for the call record). Changes that decide something are Lua (routing/lua/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from flows.errors import ErrorKind, KccError
from routing import keys
from routing.scripts import LuaScript, ScriptRunner, ScriptStep, as_bool, hash_set_get

_JOIN = LuaScript.named("conference_join")
_HOLD = LuaScript.named("conference_hold")


class NoCallInProgress(KccError):
    """A call control (hold, mute) while the adviser has no conversation in a conference."""

    code = "no_call_in_progress"
    kind = ErrorKind.CONFLICT


def conference_name(call_sid: str) -> str:
    """The conference a call talks in, named after the caller's leg."""
    return f"kcc-{call_sid}"


@dataclass(frozen=True)
class ConferenceView:
    call_sid: str  # the routed call (the queue entry's CallSid)
    offer_id: str | None
    name: str | None
    sid: str | None  # Twilio's ConferenceSid, known once the caller has joined
    caller_leg: str | None  # the caller's CallSid in the conference
    adviser_leg: str | None  # the adviser's CallSid, once Twilio placed the call
    dialled_offer: str | None  # the offer whose adviser was called in (conference_join.lua)
    called: str | None  # the number the caller dialled (the adviser's phone shows it)
    on_hold: bool
    held_ms: int  # completed holds; the current one is not counted until it ends
    muted: bool


@dataclass(frozen=True)
class HoldChange:
    changed: bool  # False: it was held (or not) already
    held_ms: int  # held so far, the current hold included
    on_hold: bool


class CallConferences:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._scripts = ScriptRunner(redis)

    async def prepare(self, call_sid: str, *, offer_id: str, caller_leg: str, called: str) -> None:
        """The caller is about to join (the connect webhook): what Twilio will not tell us."""
        fields = {
            "offer": offer_id,
            "name": conference_name(caller_leg),
            "caller": caller_leg,
            "called": called,
        }
        step = hash_set_get(keys.call_conference(call_sid), keys.CONFERENCE_TTL, fields)
        await self._scripts.run_one(step)

    async def joined(
        self, call_sid: str, *, offer_id: str, name: str, conference_sid: str, caller_leg: str
    ) -> bool:
        """The caller joined; True once per offer: now call the adviser in."""
        step = ScriptStep(
            _JOIN,
            keys=[keys.call_conference(call_sid), keys.offer(offer_id)],
            args=[offer_id, name, conference_sid, caller_leg, keys.CONFERENCE_TTL],
            decode=as_bool,
        )
        return await self._scripts.run_one(step)

    async def adviser_leg(self, call_sid: str, leg: str) -> None:
        await self._redis.hset(keys.call_conference(call_sid), "adviser", leg)

    async def handed_to(self, call_sid: str, offer_id: str, leg: str) -> None:
        """A warm transfer's colleague took the conversation: their offer and leg from now."""
        await self._redis.hset(
            keys.call_conference(call_sid), mapping={"offer": offer_id, "adviser": leg}
        )

    async def moved(self, call_sid: str) -> None:
        """The caller left this conference for another (a transfer): a new conference, new legs."""
        await self._redis.hdel(keys.call_conference(call_sid), "sid", "adviser", "muted")

    async def set_muted(self, call_sid: str, muted: bool) -> None:
        await self._redis.hset(keys.call_conference(call_sid), "muted", "1" if muted else "")

    async def hold(self, call_sid: str, on_hold: bool, now_ms: int) -> HoldChange:
        step = ScriptStep(
            _HOLD,
            keys=[keys.call_conference(call_sid)],
            args=["1" if on_hold else "0", now_ms, keys.CONFERENCE_TTL],
            decode=_hold_change,
        )
        return await self._scripts.run_one(step)

    async def view(self, call_sid: str) -> ConferenceView | None:
        raw = cast(dict[str, str], await self._redis.hgetall(keys.call_conference(call_sid)))
        return _view(call_sid, raw) if raw else None


def _hold_change(raw: Any) -> HoldChange:
    changed, held, on_hold = raw
    return HoldChange(changed=bool(int(changed)), held_ms=int(held), on_hold=bool(int(on_hold)))


def _view(call_sid: str, raw: dict[str, str]) -> ConferenceView:
    return ConferenceView(
        call_sid=call_sid,
        offer_id=raw.get("offer") or None,
        name=raw.get("name") or None,
        sid=raw.get("sid") or None,
        caller_leg=raw.get("caller") or None,
        adviser_leg=raw.get("adviser") or None,
        dialled_offer=raw.get("dialled_offer") or None,
        called=raw.get("called") or None,
        on_hold=bool(raw.get("hold_since")),
        held_ms=int(raw.get("hold_ms") or 0),
        muted=bool(raw.get("muted")),
    )


@dataclass(frozen=True)
class Conversation:
    """An adviser's conversation in its conference, as the call controls need it."""

    conferences: CallConferences
    call_sid: str  # the routed call
    conference_sid: str
    caller_leg: str
    adviser_leg: str | None
