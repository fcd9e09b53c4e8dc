"""The Erlang C figures measured on the real routing code, on a virtual clock.

A discrete-event simulation: calls arrive as a Poisson stream and are talked to for exponential
handling times, drawn from one seeded random stream. Only those two kinds of event (a call
arrives, a conversation ends) come from the simulation's own event list. Everything between
them is the service's routing: each call is queued with `CallQueue.enqueue` and offered by the
router's `offer_match.lua`; a conversation ends with `Router.dial_finished` and the adviser
presses "ready" (`Router.adviser_command`), which offers them the longest-waiting call. Offers
are answered at once (ringing is part of the handling time), so the wait of a call is the time
from entering the queue to the router offering it. The clock the router reads is a
`FixedClock` moved to each event's time: an hour of calls takes a fraction of a second.

After every event the simulation checks the one promise the figures rest on: no adviser is
available while a call they may take is waiting (`idle_while_waiting` counts the moments it
was broken; it must stay 0).

The simulation writes advisers, offers and calls of its own, so it runs on a Redis database
that holds nothing else (refused otherwise) and deletes its keys when it is done.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

from redis.asyncio import Redis

from flows.errors import ErrorKind, KccError
from routing import keys
from routing.board import AdviserBoard, Command
from routing.clock import FixedClock
from routing.entry import QueueEntry
from routing.events import EventBus
from routing.queue import CallQueue
from routing.router import Router
from routing.sealing import Sealer
from routing.staffing.erlang import Load
from routing.telephony import RecordingTelephony

PRODUCT = "staffing_simulation"  # one line; every simulated adviser has its skill
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # any instant: only differences count
_CONNECT = "simulated:connect/"  # the "URL" an offered call is moved to; carries the offer


class RedisNotEmpty(KccError):
    """The simulation would mix its advisers and calls with someone else's."""

    code = "simulation_needs_empty_redis"
    kind = ErrorKind.CONFLICT


class Event(IntEnum):
    # At one instant a conversation that ends goes first: its adviser is free for the arrival.
    CONVERSATION_ENDS = 0
    CALL_ARRIVES = 1


@dataclass(frozen=True)
class SimulationResult:
    advisers: int
    calls: int  # calls that arrived within the simulated hours (all are answered)
    hours: float
    seed: int
    p_wait: float
    asa_seconds: float
    service_level: float
    sl_seconds: float
    idle_while_waiting: int  # moments an adviser was idle while a call waited: must be 0
    waits: list[float] = field(repr=False)  # seconds each call waited, in order of arrival


class _Urls:
    """Where routing moves an offered call; the simulation reads the offer back from it."""

    def connect(self, offer_id: str) -> str:
        return f"{_CONNECT}{offer_id}"

    def adviser_status(self, offer_id: str) -> str:
        return f"simulated:adviser-status/{offer_id}"

    def transfer_status(self, call_sid: str) -> str:  # the simulation transfers nothing
        return f"simulated:transfer-status/{call_sid}"


@dataclass
class _Call:
    arrived: float  # seconds since the start
    handle_seconds: float
    offer_id: str | None = None


class Simulation:
    def __init__(
        self,
        redis: Redis,
        load: Load,
        advisers: int,
        *,
        hours: float,
        seed: int,
        sl_seconds: float = 20,
    ) -> None:
        self._redis = redis
        self._load = load
        self._advisers = advisers
        self._hours = hours
        self._seed = seed
        self._sl_seconds = sl_seconds
        self._clock = FixedClock(START)
        self._telephony = RecordingTelephony()
        self._queue = CallQueue(redis, Sealer("staffing simulation: no personal data here"))
        self._router = Router(
            board=AdviserBoard(redis),
            queue=self._queue,
            telephony=self._telephony,
            events=EventBus(redis),
            urls=_Urls(),
            now_ms=self._now_ms,
            products=[PRODUCT],
            wrap_up_seconds=0,  # after-call work is part of the handling time
        )
        self._now = 0.0
        self._calls: dict[str, _Call] = {}
        self._waits: list[float] = []
        self._idle_while_waiting = 0

    async def run(self) -> SimulationResult:
        if await self._redis.dbsize() > 0:
            raise RedisNotEmpty(
                "the simulation needs a Redis database of its own (this one holds keys): "
                "point KCC_REDIS_URL at an unused database number, e.g. redis://host:6379/15"
            )
        try:
            return await self._run()
        finally:
            await self._clean_up()

    async def _run(self) -> SimulationResult:
        names = [f"simulated-adviser-{n:03d}" for n in range(1, self._advisers + 1)]
        for name in names:
            await self._router.board.register(name, skills=[PRODUCT], device=f"client:{name}")
            await self._router.adviser_command(name, Command.AVAILABLE)
        draw = random.Random(self._seed)
        arrival_rate = self._load.calls_per_hour / 3600
        end = self._hours * 3600
        events: list[tuple[float, Event, int, str]] = []
        sequence = 0

        def schedule(at: float, event: Event, call_sid: str) -> None:
            nonlocal sequence
            sequence += 1
            heapq.heappush(events, (at, event, sequence, call_sid))

        first = draw.expovariate(arrival_rate)
        if first < end:
            schedule(first, Event.CALL_ARRIVES, "")
        while events:
            at, event, _, call_sid = heapq.heappop(events)
            self._move_clock(at)
            if event is Event.CALL_ARRIVES:
                call_sid = f"CA{len(self._calls) + 1:032d}"
                self._calls[call_sid] = _Call(at, draw.expovariate(1 / self._load.handle_seconds))
                await self._call_arrives(call_sid)
                following = at + draw.expovariate(arrival_rate)
                if following < end:
                    schedule(following, Event.CALL_ARRIVES, "")
            else:
                await self._conversation_ends(call_sid)
            for call_sid, ends_at in self._answer_offers():
                await self._router.answered(self._offer_of(call_sid))
                schedule(ends_at, Event.CONVERSATION_ENDS, call_sid)
            await self._check_nobody_idles_while_a_call_waits()
        return self._result()

    async def _call_arrives(self, call_sid: str) -> None:
        entry = QueueEntry(
            call_sid=call_sid,
            caller="anonymous",
            language="nl",
            product=PRODUCT,
            theme="",
            verification="none",
            path=[],
            queued_at=self._clock.now(),
        )
        await self._queue.enqueue(entry)
        await self._router.call_waiting(PRODUCT)

    async def _conversation_ends(self, call_sid: str) -> None:
        """The adviser hangs up, the caller's call ends, and the adviser presses "ready"."""
        settled = await self._router.dial_finished(self._offer_of(call_sid), "completed")
        await self._queue.remove(call_sid)
        if settled is not None:
            await self._router.adviser_command(settled.adviser, Command.READY)

    def _answer_offers(self) -> list[tuple[str, float]]:
        """The calls routing offered since the last event (it moved them to their adviser):
        each is answered now; returns when each conversation ends."""
        answered: list[tuple[str, float]] = []
        for call_sid, url in self._telephony.redirects:
            call = self._calls[call_sid]
            call.offer_id = url.removeprefix(_CONNECT)
            self._waits.append(self._now - call.arrived)
            answered.append((call_sid, self._now + call.handle_seconds))
        self._telephony.redirects.clear()
        return answered

    def _offer_of(self, call_sid: str) -> str:
        offer_id = self._calls[call_sid].offer_id
        if offer_id is None:
            raise RuntimeError(f"{call_sid} ended without having been offered")
        return offer_id

    async def _check_nobody_idles_while_a_call_waits(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.queue(PRODUCT))
            pipe.zcard(keys.available(PRODUCT))
            waiting, idle = await pipe.execute()
        if waiting and idle:
            self._idle_while_waiting += 1

    def _move_clock(self, at: float) -> None:
        self._now = at
        self._clock.set(START + timedelta(seconds=at))

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    def _result(self) -> SimulationResult:
        waits = self._waits
        calls = len(waits)
        if calls != len(self._calls):
            raise RuntimeError(f"{len(self._calls) - calls} calls were never answered")
        return SimulationResult(
            advisers=self._advisers,
            calls=calls,
            hours=self._hours,
            seed=self._seed,
            p_wait=_share(waits, lambda wait: wait > 0),
            asa_seconds=sum(waits) / calls if calls else 0.0,
            service_level=_share(waits, lambda wait: wait <= self._sl_seconds),
            sl_seconds=self._sl_seconds,
            idle_while_waiting=self._idle_while_waiting,
            waits=waits,
        )

    async def _clean_up(self) -> None:
        found: list[Any] = [key async for key in self._redis.scan_iter(f"{keys.PREFIX}*")]
        for start in range(0, len(found), 500):
            await self._redis.delete(*found[start : start + 500])


def _share(waits: list[float], counts: Callable[[float], bool]) -> float:
    return sum(1 for wait in waits if counts(wait)) / len(waits) if waits else 0.0
