"""What is happening now, read from Redis at any moment (for Prometheus' /metrics): calls in
the menu, calls waiting per product and the longest wait, advisers per state, and the counters
of calls offered, answered and abandoned per product. Redis holds all of it, so every instance
answers the same, whichever one Prometheus scrapes.

`DayCounters` keeps the same counts per day of the contact centre, with the waits of the
answered calls, for the wallboard's "today" (routing/wallboard.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from redis.asyncio import Redis

from routing import keys
from routing.board import AdviserBoard, AdviserState, AdviserView
from routing.clock import centre_day
from routing.entry import QueueEntry
from routing.queue import CallQueue
from routing.scripts import LuaScript, ScriptRunner, ScriptStep, as_int

_COUNT = LuaScript.named("hash_count")


def count_step(key: str, ttl_seconds: int, increments: Mapping[str, int]) -> ScriptStep[int]:
    """Add `increments` to the counters of the hash `key` and renew its time to live, as a step
    of a script (routing/scripts.py): the counts of an event go out with its other writes."""
    args: list[str | int] = [ttl_seconds]
    for field, increment in increments.items():
        args += [field, increment]
    return ScriptStep(_COUNT, keys=[key], args=args, decode=as_int)


@dataclass(frozen=True)
class LiveFigures:
    calls_in_menu: int
    waiting: dict[str, int]  # product -> callers on its line (callbacks not included)
    oldest_wait_seconds: dict[str, float]  # product -> the longest of those waits; 0 if none
    advisers: dict[AdviserState, int]  # every state, zeros included
    offered: dict[str, int]  # product -> counter
    answered: dict[str, int]
    abandoned: dict[str, int]


@dataclass(frozen=True)
class DayFigures:
    """The calls of one day of the contact centre, across all products."""

    offered: int  # joined an adviser line
    answered: int  # put through to an adviser
    answered_in_sl: int  # of those: answered within the service level's seconds
    abandoned: int  # left the line without an adviser
    wait_ms_sum: int  # the waits of the answered calls, summed

    @property
    def service_level(self) -> float | None:
        """The share of the offered calls answered in time; None before the first call."""
        return self.answered_in_sl / self.offered if self.offered else None

    @property
    def asa_seconds(self) -> float | None:
        """The average speed of answer: the mean wait of the answered calls."""
        return self.wait_ms_sum / self.answered / 1000 if self.answered else None


class DayCounters:
    """Counts per day (the centre's date at the app's clock), in one Redis hash a day.

    Offered calls are counted by the script that queues them (routing/queue.py); the answered
    and abandoned ones here, next to the counters /metrics shows."""

    def __init__(self, redis: Redis, *, service_level_seconds: int) -> None:
        self._redis = redis
        self._scripts = ScriptRunner(redis)
        self.service_level_seconds = service_level_seconds  # "in time" for answered_in_sl

    async def count_answered(self, at: datetime, waited_seconds: float) -> None:
        await self._scripts.run_one(self.answered_step(at, waited_seconds))

    # Steps, so that a count goes out in the script of the event it counts: one round trip.
    def answered_step(self, at: datetime, waited_seconds: float) -> ScriptStep[int]:
        increments = {"answered": 1, "wait_ms_sum": max(0, round(waited_seconds * 1000))}
        if waited_seconds <= self.service_level_seconds:
            increments["answered_in_sl"] = 1
        return count_step(keys.calls_today(centre_day(at)), keys.CALLS_TODAY_TTL, increments)

    def abandoned_step(self, at: datetime) -> ScriptStep[int]:
        return count_step(keys.calls_today(centre_day(at)), keys.CALLS_TODAY_TTL, {"abandoned": 1})

    async def read(self, at: datetime) -> DayFigures:
        raw = cast(dict[str, str], await self._redis.hgetall(keys.calls_today(centre_day(at))))

        def count(field: str) -> int:
            return int(raw.get(field, 0))

        return DayFigures(
            offered=count("offered"),
            answered=count("answered"),
            answered_in_sl=count("answered_in_sl"),
            abandoned=count("abandoned"),
            wait_ms_sum=count("wait_ms_sum"),
        )


def waiting_lines(
    entries: Sequence[QueueEntry], products: Sequence[str], now: datetime
) -> tuple[dict[str, int], dict[str, float]]:
    """Per product (each of `products`, zeros too): the callers on its line (callbacks not
    included) and the longest of their waits in seconds."""
    waiting = dict.fromkeys(products, 0)
    oldest = dict.fromkeys(products, 0.0)
    for entry in entries:
        if entry.callback:
            continue
        waiting[entry.product] = waiting.get(entry.product, 0) + 1
        wait = max(0.0, (now - entry.queued_at).total_seconds())
        oldest[entry.product] = max(oldest.get(entry.product, 0.0), wait)
    return waiting, oldest


def advisers_per_state(views: Sequence[AdviserView]) -> dict[AdviserState, int]:
    """How many advisers are in each state; every state, zeros included."""
    advisers = dict.fromkeys(AdviserState, 0)
    for view in views:
        advisers[view.state] += 1
    return advisers


class LiveFigureReader:
    def __init__(
        self,
        *,
        redis: Redis,
        queue: CallQueue,
        board: AdviserBoard,
        products: Callable[[], Sequence[str]],
        now: Callable[[], datetime],
        days: DayCounters,
    ) -> None:
        self._redis = redis
        self._queue = queue
        self._board = board
        self._products = products  # the live flow's products: each gets a series, zeros too
        self._now = now  # the app's clock: queued_at is written by it
        self.days = days

    def abandoned_steps(self, product: str) -> list[ScriptStep[int]]:
        """A call left the line without an adviser: the /metrics counter and today's figures,
        as steps of the script that hands over the call's record (one round trip)."""
        return [
            count_step(keys.calls_abandoned(), keys.CALL_COUNTER_TTL, {product: 1}),
            self.days.abandoned_step(self._now()),
        ]

    async def read(self) -> LiveFigures:
        products = list(self._products())
        waiting, oldest = waiting_lines(await self._queue.waiting(), products, self._now())
        return LiveFigures(
            calls_in_menu=await self.calls_in_menu(),
            waiting=waiting,
            oldest_wait_seconds=oldest,
            advisers=advisers_per_state(await self._board.views()),
            offered=await self._counter(keys.calls_offered(), products),
            answered=await self._counter(keys.calls_answered(), products),
            abandoned=await self._counter(keys.calls_abandoned(), products),
        )

    async def calls_in_menu(self) -> int:
        # A call whose end never reached us (a lost status callback) leaves by age.
        seconds, micros = await self._redis.time()
        now_ms = seconds * 1000 + micros // 1000
        key = keys.calls_in_menu()
        await self._redis.zremrangebyscore(key, "-inf", now_ms - keys.MENU_CALL_MAX_AGE * 1000)
        return int(await self._redis.zcard(key))

    async def _counter(self, key: str, products: list[str]) -> dict[str, int]:
        counts = dict.fromkeys(products, 0)
        raw = cast(dict[str, str], await self._redis.hgetall(key))
        counts.update({product: int(value) for product, value in raw.items()})
        return counts
