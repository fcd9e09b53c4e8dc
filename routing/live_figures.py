"""What is happening now, read from Redis at any moment (for Prometheus' /metrics): calls in
the menu, calls waiting per product and the longest wait, advisers per state, and the counters
of calls offered, answered and abandoned per product. Redis holds all of it, so every instance
answers the same, whichever one Prometheus scrapes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from redis.asyncio import Redis

from routing import keys
from routing.board import AdviserBoard, AdviserState
from routing.queue import CallQueue


@dataclass(frozen=True)
class LiveFigures:
    calls_in_menu: int
    waiting: dict[str, int]  # product -> callers on its line (callbacks not included)
    oldest_wait_seconds: dict[str, float]  # product -> the longest of those waits; 0 if none
    advisers: dict[AdviserState, int]  # every state, zeros included
    offered: dict[str, int]  # product -> counter
    answered: dict[str, int]
    abandoned: dict[str, int]


class LiveFigureReader:
    def __init__(
        self,
        *,
        redis: Redis,
        queue: CallQueue,
        board: AdviserBoard,
        products: Callable[[], Sequence[str]],
        now: Callable[[], datetime],
    ) -> None:
        self._redis = redis
        self._queue = queue
        self._board = board
        self._products = products  # the live flow's products: each gets a series, zeros too
        self._now = now  # the app's clock: queued_at is written by it

    async def count_abandoned(self, product: str) -> None:
        # Two plain commands, sent together on the shared pipelined connection: a MULTI/EXEC
        # pipeline would take a pooled connection and a round trip of its own on every
        # abandoned call. A lost EXPIRE is renewed by the next abandoned call.
        counter = keys.calls_abandoned()
        await asyncio.gather(
            self._redis.hincrby(counter, product, 1),
            self._redis.expire(counter, keys.CALL_COUNTER_TTL),
        )

    async def read(self) -> LiveFigures:
        products = list(self._products())
        waiting = dict.fromkeys(products, 0)
        oldest = dict.fromkeys(products, 0.0)
        now = self._now()
        for entry in await self._queue.waiting():
            if entry.callback:
                continue
            waiting[entry.product] = waiting.get(entry.product, 0) + 1
            wait = max(0.0, (now - entry.queued_at).total_seconds())
            oldest[entry.product] = max(oldest.get(entry.product, 0.0), wait)
        advisers = dict.fromkeys(AdviserState, 0)
        for view in await self._board.views():
            advisers[view.state] += 1
        return LiveFigures(
            calls_in_menu=await self._calls_in_menu(),
            waiting=waiting,
            oldest_wait_seconds=oldest,
            advisers=advisers,
            offered=await self._counter(keys.calls_offered(), products),
            answered=await self._counter(keys.calls_answered(), products),
            abandoned=await self._counter(keys.calls_abandoned(), products),
        )

    async def _calls_in_menu(self) -> int:
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
