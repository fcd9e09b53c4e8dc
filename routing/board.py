"""Advisers' live states and the offers that pair them with waiting calls, in Redis.

Every change is one Lua script (routing/lua/), so several app instances on one Redis never give
a call to two advisers or two calls to one adviser. Key names come from routing/keys.py. What
the scripts answer is decoded here into typed values with enum states.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from redis.asyncio import Redis

from flows.errors import ErrorKind, KccError
from routing import keys
from routing.scripts import LuaScript, ScriptRunner, ScriptStep, as_int

OFFER_SECONDS = 20  # how long an adviser's phone rings before the call goes back
MATCH_ROUNDS = 50  # pairs made by one script run; the rest on the next event or tick
CALL_CHECK_SECONDS = 60  # a conversation quiet this long: routing asks Twilio if it still runs
CALL_CHECKS_PER_TICK = 50  # conversations claimed for a check by one tick; the rest next tick

_COMMAND = LuaScript.named("adviser_command")
_MATCH = LuaScript.named("offer_match")
_SETTLE = LuaScript.named("offer_settle")
_CALL_STATE = LuaScript.named("call_state")
_CHECKS_DUE = LuaScript.named("call_checks_due")
_WORKING = LuaScript.named("advisers_working")


@functools.cache
def _match_templates(prefix: str) -> tuple[str, ...]:
    """The key templates match.lua fills in, made once per namespace (a match runs with every
    queued call)."""
    names = (keys.queue, keys.available, keys.adviser, keys.offer, keys.call_offer)
    return tuple(keys.template(name) for name in names)


class AdviserState(StrEnum):
    OFFLINE = "offline"  # not working
    AVAILABLE = "available"  # waiting for a call
    OFFERED = "offered"  # their phone rings
    ON_CALL = "on_call"  # talking
    WRAP_UP = "wrap_up"  # after-call work, until ready or the wrap-up time is over
    BREAK = "break"  # away
    MISSED = "missed"  # did not answer an offer; no calls until available again
    AWAY = "away"  # the desk is gone (routing/presence.py): no calls until it is back


class OfferState(StrEnum):
    OFFERED = "offered"  # the adviser's phone rings (or a callback waits to be dialled)
    CONNECTED = "connected"  # the adviser answered: they talk


class OfferKind(StrEnum):
    CALL = "call"  # the caller is on the line, in the queue
    CALLBACK = "callback"  # the caller hung up to be called back: the adviser dials


class Command(StrEnum):
    AVAILABLE = "available"
    READY = "ready"
    BREAK = "break"
    OFFLINE = "offline"


class Settle(StrEnum):
    ANSWERED = "answered"
    FINISHED = "finished"
    MISSED = "missed"
    WITHDRAWN = "withdrawn"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Offer:
    offer_id: str
    call_sid: str
    adviser: str
    product: str


@dataclass(frozen=True)
class OfferView:
    """An open offer as Redis holds it."""

    offer_id: str
    call_sid: str
    adviser: str
    product: str
    state: OfferState
    kind: OfferKind
    dialled: str | None  # a callback: the call Justis placed to the caller
    connected_ms: int | None  # when the adviser answered


@dataclass(frozen=True)
class Settled:
    call_sid: str
    adviser: str
    product: str
    previous: OfferState  # the offer's state before it was settled
    adviser_state: AdviserState


@dataclass(frozen=True)
class CallState:
    """What routing knows of a call."""

    answered: bool  # an adviser answered it
    offer_id: str | None  # its open offer
    transferring: bool = False  # a transfer of it is in progress (routing/transfers.py)


@dataclass(frozen=True)
class AdviserView:
    name: str
    state: AdviserState
    since_ms: int
    skills: list[str]
    device: str
    call_sid: str | None
    offer_id: str | None
    wrap_until_ms: int | None
    last_call_sid: str | None = None  # the call they last talked to, for the wrap-up form
    last_product: str | None = None  # that call's product: its wrap-up codes


# What the command script refuses with, as English; the pages translate the code.
REFUSALS = {
    "call_in_progress": "you have a call; it ends first",
    "break_after_call": "you have a call; take a break after it",
    "sign_in_first": "sign in (available) before taking a break",
    "not_in_wrap_up": "ready is for the end of wrap-up; you are {state}",
    "unknown_command": "unknown command",
}


class InvalidTransition(KccError):
    """An adviser asked for a state change that is not allowed now; `code` says why."""

    kind = ErrorKind.CONFLICT

    def __init__(self, state: AdviserState, refusal: str) -> None:
        super().__init__(REFUSALS.get(refusal, refusal).format(state=state.value), state=state)
        self.code = refusal
        self.state = state


class AdviserBoard:
    def __init__(
        self,
        redis: Redis,
        *,
        offer_seconds: int = OFFER_SECONDS,
        call_check_seconds: int = CALL_CHECK_SECONDS,
        working_ttl_ms: int = keys.ADVISERS_WORKING_TTL_MS,
    ) -> None:
        self._redis = redis
        self._scripts = ScriptRunner(redis)
        self.offer_seconds = offer_seconds
        self.call_check_seconds = call_check_seconds
        self.working_ttl_ms = working_ttl_ms  # how old `working`'s count may be

    async def register(self, name: str, *, skills: list[str], device: str) -> None:
        """Make the adviser known with their skills and device (from the database)."""
        key = keys.adviser(name)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "state", AdviserState.OFFLINE.value)
            pipe.hsetnx(key, "since", "0")
            pipe.hset(key, mapping={"skills": ",".join(skills), "device": device})
            pipe.expire(key, keys.ADVISER_TTL)
            pipe.sadd(keys.advisers(), name)
            pipe.expire(keys.advisers(), keys.ADVISER_TTL)
            await pipe.execute()

    async def command(self, name: str, command: Command, now_ms: int) -> AdviserState:
        """The adviser's own change; raises InvalidTransition with the reason."""
        step = ScriptStep(
            _COMMAND,
            keys=[keys.adviser(name), keys.wrap_up_ends(), keys.presence_due()],
            args=[
                keys.template(keys.available),
                name,
                command.value,
                now_ms,
                keys.ADVISER_TTL,
                keys.PRESENCE_TTL,
            ],
            decode=_command_result,
        )
        state, refusal = await self._scripts.run_one(step)
        if refusal is not None:
            raise InvalidTransition(state, refusal)
        return state

    async def match(self, products: list[str], now_ms: int) -> list[Offer]:
        """Pair waiting calls with available advisers; returns the offers made."""
        if not products:
            return []
        return await self._scripts.run_one(self.match_step(products, now_ms))

    def match_step(self, products: list[str], now_ms: int) -> ScriptStep[list[Offer]]:
        """`match` as a step of a longer script."""
        deadline = now_ms + (self.offer_seconds + 15) * 1000
        return ScriptStep(
            _MATCH,
            keys=[keys.offer_sequence(), keys.offer_deadlines()],
            args=[
                *_match_templates(keys.PREFIX),
                now_ms,
                deadline,
                MATCH_ROUNDS,
                keys.OFFER_TTL,
                *products,
            ],
            decode=_offers,
        )

    async def settle(
        self, offer_id: str, outcome: Settle, now_ms: int, *, wrap_up_seconds: int = 0
    ) -> Settled | None:
        step = self.settle_step(offer_id, outcome, now_ms, wrap_up_seconds=wrap_up_seconds)
        return await self._scripts.run_one(step)

    def settle_step(
        self, offer_id: str, outcome: Settle, now_ms: int, *, wrap_up_seconds: int = 0
    ) -> ScriptStep[Settled | None]:
        """`settle` as a step of a longer script."""
        return ScriptStep(
            _SETTLE,
            keys=[
                keys.offer_deadlines(),
                keys.wrap_up_ends(),
                keys.calls_answered(),
                keys.call_checks(),
            ],
            args=[
                keys.template(keys.offer),
                keys.template(keys.adviser),
                keys.template(keys.available),
                keys.template(keys.call_offer),
                keys.template(keys.call_answered),
                keys.template(keys.queue_entry),
                keys.template(keys.queue),
                offer_id,
                outcome.value,
                now_ms,
                keys.OFFER_TTL,
                now_ms + wrap_up_seconds * 1000,
                keys.CALL_COUNTER_TTL,
                now_ms + self.call_check_seconds * 1000,
                keys.CONFERENCE_TTL,
            ],
            decode=settled_of,
        )

    async def working(self, product: str) -> int:
        """Advisers with this skill who are at work (not offline, on a break or away), as counted
        over all advisers at most `working_ttl_ms` ago by any instance: one script, which reads
        one field while the count is fresh (the expected wait asks on every waitUrl fetch)."""
        step = ScriptStep(
            _WORKING,
            keys=[keys.advisers(), keys.advisers_working()],
            args=[keys.template(keys.adviser), product, self.working_ttl_ms],
            decode=as_int,
        )
        return await self._scripts.run_one(step)

    async def mark_callback(self, offer_id: str, deadline_ms: int) -> None:
        """A callback offer waits for the adviser to dial, so it gets longer than a ring."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.offer(offer_id), "kind", OfferKind.CALLBACK.value)
            pipe.zadd(keys.offer_deadlines(), {offer_id: deadline_ms})
            await pipe.execute()

    async def set_dialled(self, offer_id: str, call_sid: str) -> None:
        await self._redis.hset(keys.offer(offer_id), "dialled", call_sid)

    async def was_answered(self, call_sid: str) -> bool:
        return bool(await self._redis.exists(keys.call_answered(call_sid)))

    async def call_state(self, call_sid: str) -> CallState:
        """What routing knows of a call, in one round trip."""
        return await self._scripts.run_one(self.call_state_step(call_sid))

    def call_state_step(self, call_sid: str) -> ScriptStep[CallState]:
        """`call_state` as a step of a longer script; `keys` are the call's routing keys."""
        return ScriptStep(
            _CALL_STATE,
            keys=[
                keys.call_answered(call_sid),
                keys.call_offer(call_sid),
                keys.call_transfer(call_sid),
            ],
            args=[],
            decode=_call_state,
        )

    async def offer_of_call(self, call_sid: str) -> str | None:
        value = await self._redis.get(keys.call_offer(call_sid))
        return str(value) if value else None

    async def offer(self, offer_id: str) -> OfferView | None:
        raw = cast(dict[str, str], await self._redis.hgetall(keys.offer(offer_id)))
        return _offer_view(offer_id, raw) if raw.get("call_sid") else None

    async def view(self, name: str) -> AdviserView | None:
        raw = cast(dict[str, str], await self._redis.hgetall(keys.adviser(name)))
        return _view(name, raw) if raw else None

    async def names(self) -> list[str]:
        return sorted(cast(set[str], await self._redis.smembers(keys.advisers())))

    async def views(self) -> list[AdviserView]:
        names = sorted(cast(set[str], await self._redis.smembers(keys.advisers())))
        views = [await self.view(name) for name in names]
        return [v for v in views if v is not None]

    async def due_wrap_ups(self, now_ms: int) -> list[str]:
        found = await self._redis.zrangebyscore(keys.wrap_up_ends(), "-inf", now_ms)
        return [str(name) for name in found]

    async def stale_offers(self, now_ms: int) -> list[str]:
        found = await self._redis.zrangebyscore(keys.offer_deadlines(), "-inf", now_ms)
        return [str(offer_id) for offer_id in found]

    async def due_call_checks(self, now_ms: int) -> list[str]:
        """The offers of conversations quiet for `call_check_seconds`, claimed for a check by
        this caller (another instance gets none of them until the next interval)."""
        step = ScriptStep(
            _CHECKS_DUE,
            keys=[keys.call_checks()],
            args=[now_ms, now_ms + self.call_check_seconds * 1000, CALL_CHECKS_PER_TICK],
            decode=_offer_ids,
        )
        return await self._scripts.run_one(step)

    async def forget_call_check(self, offer_id: str) -> None:
        """The offer is no conversation in progress (ended, or a consult that ended)."""
        await self._redis.zrem(keys.call_checks(), offer_id)


# -- what the scripts answer, decoded ---------------------------------------------------------


def _command_result(raw: Any) -> tuple[AdviserState, str | None]:
    done, state, *refusal = raw
    return AdviserState(str(state)), None if int(done) == 1 else str(refusal[0])


def _offer_ids(raw: Any) -> list[str]:
    return [str(offer_id) for offer_id in raw or []]


def _offers(raw: Any) -> list[Offer]:
    return [Offer(str(i), str(c), str(a), str(p)) for i, c, a, p in raw or []]


def settled_of(raw: Any) -> Settled | None:
    """An offer_settle-like script's answer, decoded."""
    if not raw:
        return None
    call, adviser, product, previous, state = (str(v) if v else "" for v in raw)
    return Settled(
        call_sid=call,
        adviser=adviser,
        product=product,
        previous=OfferState(previous or OfferState.OFFERED.value),
        adviser_state=AdviserState(state or AdviserState.OFFLINE.value),
    )


def _call_state(raw: Any) -> CallState:
    answered, offer_id, transferring = raw
    return CallState(
        answered=bool(answered),
        offer_id=str(offer_id) if offer_id else None,
        transferring=bool(transferring),
    )


def _offer_view(offer_id: str, raw: dict[str, str]) -> OfferView:
    connected = raw.get("connected")
    return OfferView(
        offer_id=offer_id,
        call_sid=raw["call_sid"],
        adviser=raw.get("adviser", ""),
        product=raw.get("product", ""),
        state=OfferState(raw.get("state", OfferState.OFFERED.value)),
        kind=OfferKind(raw.get("kind", OfferKind.CALL.value)),
        dialled=raw.get("dialled") or None,
        connected_ms=int(connected) if connected else None,
    )


def _view(name: str, raw: dict[str, Any]) -> AdviserView:
    state = AdviserState(raw.get("state", AdviserState.OFFLINE.value))
    wrap_until = raw.get("wrap_until")
    return AdviserView(
        name=name,
        state=state,
        since_ms=int(raw.get("since") or 0),
        skills=[s for s in str(raw.get("skills", "")).split(",") if s],
        device=str(raw.get("device", "")),
        call_sid=str(raw["call_sid"]) if raw.get("call_sid") else None,
        offer_id=str(raw["offer_id"]) if raw.get("offer_id") else None,
        wrap_until_ms=int(wrap_until) if wrap_until and state is AdviserState.WRAP_UP else None,
        last_call_sid=str(raw["last_call"]) if raw.get("last_call") else None,
        last_product=str(raw["last_product"]) if raw.get("last_product") else None,
    )
