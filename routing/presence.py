"""The desk's connection is the adviser's presence.

Every open desk tab holds an event stream; the instance serving it beats for the tab every few
seconds (`keys.DESK_BEAT_SECONDS`) and says when it closes. A tab may report its browser phone
as registered or not. An adviser with no reachable desk for longer than the grace period becomes
AWAY and is offered no calls; when the desk is back they return to what they had chosen. Every
step is one Lua script (routing/lua/presence_*.lua), so the sweep may run on every instance at
once: only the instance whose script made a change is told of it. The sweep reads only the
advisers whose time is up (`keys.presence_due`, kept by the script itself): an idle second
costs one read however many desks are open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from redis.asyncio import Redis

from routing import keys
from routing.board import AdviserState, Settled
from routing.scripts import LuaScript, ScriptRunner, ScriptStep

GRACE_SECONDS = 20  # how long a desk may be gone before the adviser is AWAY
BROWSER_PHONE = "client:"  # a device so named rings in the desk page (a Twilio Client identity)

_DESK = LuaScript.named("presence_desk")
_SWEEP = LuaScript.named("presence_sweep")


class PhoneState(StrEnum):
    REGISTERED = "registered"  # the tab's browser phone can ring
    UNREGISTERED = "unregistered"  # it cannot: the tab alone does not make the adviser reachable


class DeskAction(StrEnum):
    BEAT = "beat"  # the tab's stream is open
    GONE = "gone"  # the tab's stream closed
    PHONE = "phone"  # the tab reported its browser phone


class PresenceChange(StrEnum):
    AWAY = "away"  # the desk was gone too long: no more calls
    BACK = "back"  # the desk is back: the adviser's chosen state again
    WITHDRAW = "withdraw"  # the desk is gone while a call rings there: take the offer back


@dataclass(frozen=True)
class PresenceOutcome:
    adviser: str
    change: PresenceChange
    state: AdviserState  # the adviser's state after the change
    offer_id: str | None  # WITHDRAW: the offer to take back


class DeskPresence:
    def __init__(self, redis: Redis, *, grace_seconds: int = GRACE_SECONDS) -> None:
        self._redis = redis
        self._scripts = ScriptRunner(redis)
        self.grace_ms = grace_seconds * 1000
        self._looked_at_all = False

    async def desk(
        self,
        name: str,
        tab: str,
        action: DeskAction,
        now_ms: int,
        *,
        phone: PhoneState = PhoneState.REGISTERED,
    ) -> list[PresenceOutcome]:
        """Record what a tab said, and what it changes for the adviser, in one script."""
        step = ScriptStep(
            _DESK,
            keys=[keys.desk_tabs(name), keys.desk_phones(name), keys.adviser(name)],
            args=[
                action.value,
                tab,
                now_ms,
                now_ms + keys.DESK_TAB_LIVE_MS,
                phone.value,
                keys.PRESENCE_TTL,
            ],
            decode=lambda raw: None,
        )
        sweep = self.sweep_step([name], now_ms)
        return (await self._scripts.run(step, sweep)).of(sweep)

    async def sweep_due(self, now_ms: int) -> list[PresenceOutcome]:
        """The timer's sweep: the advisers whose time is up. An instance's first sweep looks at
        every adviser, which fills the due set for desks that went before it was kept."""
        if self._looked_at_all:
            names = await self._redis.zrangebyscore(keys.presence_due(), "-inf", now_ms)
        else:
            self._looked_at_all = True
            names = sorted(await self._redis.smembers(keys.advisers()))
        return await self.sweep(cast(list[str], names), now_ms)

    async def sweep(self, names: Sequence[str], now_ms: int) -> list[PresenceOutcome]:
        if not names:
            return []
        return await self._scripts.run_one(self.sweep_step(names, now_ms))

    def sweep_step(self, names: Sequence[str], now_ms: int) -> ScriptStep[list[PresenceOutcome]]:
        adviser_keys: list[str] = []
        for name in names:
            adviser_keys += [keys.adviser(name), keys.desk_tabs(name), keys.desk_phones(name)]
        return ScriptStep(
            _SWEEP,
            keys=[keys.wrap_up_ends(), keys.presence_due(), *adviser_keys],
            args=[
                keys.template(keys.available),
                now_ms,
                self.grace_ms,
                keys.ADVISER_TTL,
                BROWSER_PHONE,
                keys.PRESENCE_TTL,
                *names,
            ],
            decode=_outcomes,
        )

    async def withdraw(
        self, settle: ScriptStep[Settled | None], name: str, now_ms: int
    ) -> tuple[Settled | None, list[PresenceOutcome]]:
        """Take back the offer ringing at an absent desk (`settle`, outcome withdrawn: the call
        back to its place at the head of its line) and make the adviser AWAY, as one script: no
        match can offer them a call in between."""
        sweep = self.sweep_step([name], now_ms)
        outcomes = await self._scripts.run(settle, sweep)
        return outcomes.of(settle), outcomes.of(sweep)


def _outcomes(raw: Any) -> list[PresenceOutcome]:
    return [
        PresenceOutcome(
            adviser=str(name),
            change=PresenceChange(str(change)),
            state=AdviserState(str(state)),
            offer_id=str(offer_id) if offer_id else None,
        )
        for name, change, state, offer_id in raw or []
        if change
    ]
