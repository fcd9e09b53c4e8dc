"""Advisers' live states and the offers that pair them with waiting calls, in Redis.

Every change is one Lua script (routing/lua/), so several app instances on one Redis never give
a call to two advisers or two calls to one adviser. Key names come from routing/keys.py; the
scripts build the per-product and per-adviser names from the same prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any, cast

from redis.asyncio import Redis

from routing import keys
from routing.scripts import ScriptStep

OFFER_SECONDS = 20  # how long an adviser's phone rings before the call goes back
MATCH_ROUNDS = 50  # pairs made by one script run; the rest on the next event or tick


class AdviserState(StrEnum):
    OFFLINE = "offline"  # not working
    AVAILABLE = "available"  # waiting for a call
    OFFERED = "offered"  # their phone rings
    ON_CALL = "on_call"  # talking
    WRAP_UP = "wrap_up"  # after-call work, until ready or the wrap-up time is over
    BREAK = "break"  # away
    MISSED = "missed"  # did not answer an offer; no calls until available again


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
class Settled:
    call_sid: str
    adviser: str
    product: str
    previous: str  # the offer's state before: offered or connected
    adviser_state: str


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


class InvalidTransition(Exception):
    def __init__(self, state: str, reason: str) -> None:
        self.state = state
        super().__init__(reason)


def _script(name: str) -> str:
    return resources.files("routing.lua").joinpath(name).read_text(encoding="utf-8")


class AdviserBoard:
    def __init__(self, redis: Redis, *, offer_seconds: int = OFFER_SECONDS) -> None:
        self._redis = redis
        self.offer_seconds = offer_seconds
        self._match_lua = _script("match.lua")
        self._match = redis.register_script(self._match_lua)
        self._command = redis.register_script(_script("command.lua"))
        self._settle = redis.register_script(_script("settle.lua"))

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
        result = await self._command(
            keys=[keys.adviser(name)],
            args=[keys.PREFIX, name, command.value, now_ms, keys.ADVISER_TTL],
        )
        if int(result[0]) != 1:
            raise InvalidTransition(str(result[1]), str(result[2]))
        return AdviserState(str(result[1]))

    async def match(self, products: list[str], now_ms: int) -> list[Offer]:
        """Pair waiting calls with available advisers; returns the offers made."""
        if not products:
            return []
        step = self.match_step(products, now_ms)
        return self.offers_from(await self._match(keys=step.keys, args=step.args))

    def match_step(self, products: list[str], now_ms: int) -> ScriptStep:
        """`match` as a step of a longer script; its result goes to `offers_from`."""
        deadline = now_ms + (self.offer_seconds + 15) * 1000
        return ScriptStep(
            self._match_lua,
            keys=[],
            args=[keys.PREFIX, now_ms, deadline, MATCH_ROUNDS, keys.OFFER_TTL, *products],
        )

    @staticmethod
    def offers_from(made: Any) -> list[Offer]:
        return [Offer(str(i), str(c), str(a), str(p)) for i, c, a, p in made or []]

    async def settle(
        self, offer_id: str, outcome: Settle, now_ms: int, *, wrap_up_seconds: int = 0
    ) -> Settled | None:
        result = await self._settle(
            keys=[],
            args=[
                keys.PREFIX,
                offer_id,
                outcome.value,
                now_ms,
                keys.OFFER_TTL,
                now_ms + wrap_up_seconds * 1000,
            ],
        )
        if not result:
            return None
        call, adviser, product, previous, state = (str(v) if v else "" for v in result)
        return Settled(call, adviser, product, previous, state)

    async def working(self, product: str) -> int:
        """Advisers with this skill who are at work (not offline, not on a break)."""
        names = sorted(cast(set[str], await self._redis.smembers(keys.advisers())))
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(keys.adviser(name), ["state", "skills"])
            found = await pipe.execute()
        away = {AdviserState.OFFLINE.value, AdviserState.BREAK.value, None}
        return sum(
            1
            for state, skills in found
            if state not in away and product in str(skills or "").split(",")
        )

    async def mark_callback(self, offer_id: str, deadline_ms: int) -> None:
        """A callback offer waits for the adviser to dial, so it gets longer than a ring."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.offer(offer_id), "kind", "callback")
            pipe.zadd(keys.offer_deadlines(), {offer_id: deadline_ms})
            await pipe.execute()

    async def set_dialled(self, offer_id: str, call_sid: str) -> None:
        await self._redis.hset(keys.offer(offer_id), "dialled", call_sid)

    async def was_answered(self, call_sid: str) -> bool:
        return bool(await self._redis.exists(keys.call_answered(call_sid)))

    async def call_state(self, call_sid: str) -> tuple[bool, str | None]:
        """(an adviser answered it, its open offer) in one round trip."""
        step = self.call_state_step(call_sid)
        return self.call_state_from(await self._redis.mget(step.keys))

    def call_state_step(self, call_sid: str) -> ScriptStep:
        """`call_state` as a step of a longer script; its result goes to `call_state_from`."""
        return ScriptStep(
            "return redis.call('MGET', KEYS[1], KEYS[2])",
            keys=[keys.call_answered(call_sid), keys.call_offer(call_sid)],
            args=[],
        )

    @staticmethod
    def call_state_from(found: Any) -> tuple[bool, str | None]:
        answered, offer_id = found
        return bool(answered), str(offer_id) if offer_id else None

    async def offer_of_call(self, call_sid: str) -> str | None:
        value = await self._redis.get(keys.call_offer(call_sid))
        return str(value) if value else None

    async def offer(self, offer_id: str) -> dict[str, str]:
        return cast(dict[str, str], await self._redis.hgetall(keys.offer(offer_id)))

    async def view(self, name: str) -> AdviserView | None:
        raw = cast(dict[str, str], await self._redis.hgetall(keys.adviser(name)))
        return _view(name, raw) if raw else None

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


def _view(name: str, raw: dict[str, Any]) -> AdviserView:
    wrap_until = raw.get("wrap_until")
    return AdviserView(
        name=name,
        state=AdviserState(raw.get("state", "offline")),
        since_ms=int(raw.get("since") or 0),
        skills=[s for s in str(raw.get("skills", "")).split(",") if s],
        device=str(raw.get("device", "")),
        call_sid=str(raw["call_sid"]) if raw.get("call_sid") else None,
        offer_id=str(raw["offer_id"]) if raw.get("offer_id") else None,
        wrap_until_ms=int(wrap_until) if wrap_until and raw.get("state") == "wrap_up" else None,
        last_call_sid=str(raw["last_call"]) if raw.get("last_call") else None,
    )
