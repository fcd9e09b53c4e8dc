"""Presence in the real Redis: the desk's connection decides whether an adviser gets calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from api.services import make_redis
from routing import keys
from routing.board import AdviserBoard, AdviserState, Command
from routing.events import CallEvent, EventBus
from routing.presence import DeskPresence, PhoneState
from routing.queue import CallQueue
from routing.router import Router
from routing.sealing import Sealer
from routing.telephony import RecordingTelephony
from tests.conftest import REDIS_SERVICE, REDIS_UP, REDIS_URL, SECRET_KEY, need_service
from tests.support.routing_redis import PRODUCTS, Urls, waiting_call

GRACE_S = 20
START_MS = 1_795_000_000_000


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.ms = START_MS

    def __call__(self) -> int:
        return self.ms

    def forward(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


class History:
    """The state changes an instance reports (what goes to adviser_state_changes)."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, AdviserState]] = []

    async def __call__(self, name: str, state: AdviserState, at: int, call: str | None) -> None:
        self.changes.append((name, state))


def make_router(
    redis: aioredis.Redis, clock: Clock, telephony: RecordingTelephony, history: History
) -> Router:
    return Router(
        board=AdviserBoard(redis),
        queue=CallQueue(redis, Sealer(SECRET_KEY)),
        telephony=telephony,
        events=EventBus(redis),
        urls=Urls(),
        now_ms=clock,
        products=PRODUCTS,
        on_state_change=history,
        presence=DeskPresence(redis, grace_seconds=GRACE_S),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def telephony() -> RecordingTelephony:
    return RecordingTelephony()


@pytest.fixture
def history() -> History:
    return History()


@pytest.fixture
def router(
    redis_client: aioredis.Redis, clock: Clock, telephony: RecordingTelephony, history: History
) -> Router:
    return make_router(redis_client, clock, telephony, history)


async def at_desk(router: Router, name: str, *, device: str | None = None, tab: str = "t1") -> None:
    """The adviser opens the desk (tab `tab`) and says they are available."""
    await router.board.register(name, skills=["vog_np"], device=device or f"client:{name}")
    await router.desk_beat(name, tab)
    await router.adviser_command(name, Command.AVAILABLE)


async def state_of(router: Router, name: str) -> AdviserState:
    view = await router.board.view(name)
    assert view is not None
    return view.state


async def test_closed_desk_makes_the_adviser_away_after_the_grace_period_and_no_call_rings(
    router: Router, clock: Clock, history: History
) -> None:
    await at_desk(router, "ann")
    await router.desk_gone("ann", "t1")
    clock.forward(GRACE_S - 1)
    await router.tick()
    assert await state_of(router, "ann") is AdviserState.AVAILABLE  # a reload is not absence
    clock.forward(1)
    await router.tick()
    assert await state_of(router, "ann") is AdviserState.AWAY
    assert history.changes[-1] == ("ann", AdviserState.AWAY)
    await waiting_call(router.queue, "CA1")
    await router.call_waiting("vog_np")
    assert await router.queue.position("CA1", "vog_np") == 1  # nobody's phone rings
    assert await router.board.working("vog_np") == 0  # not counted for wait estimates


async def test_a_desk_that_comes_back_returns_the_adviser_to_available_and_takes_the_call(
    router: Router, clock: Clock, history: History
) -> None:
    await at_desk(router, "ann")
    await router.desk_gone("ann", "t1")
    clock.forward(GRACE_S + 5)
    await router.tick()
    await waiting_call(router.queue, "CA1")
    await router.desk_beat("ann", "t2")  # a new tab
    view = await router.board.view("ann")
    assert view is not None and view.state is AdviserState.OFFERED and view.call_sid == "CA1"
    assert ("ann", AdviserState.AVAILABLE) in history.changes[-3:]


async def test_a_tab_whose_stream_stopped_beating_counts_as_gone(
    router: Router, clock: Clock
) -> None:
    await at_desk(router, "ann")  # its instance dies: no beat, no 'gone'
    clock.forward(keys.DESK_TAB_LIVE_MS / 1000 + GRACE_S)
    await router.tick()
    assert await state_of(router, "ann") is not AdviserState.AWAY  # absent since the tab died
    clock.forward(GRACE_S)
    await router.tick()
    assert await state_of(router, "ann") is AdviserState.AWAY


async def test_one_open_tab_of_two_keeps_the_adviser_present(router: Router, clock: Clock) -> None:
    await at_desk(router, "ann", tab="t1")
    await router.desk_beat("ann", "t2")
    await router.desk_gone("ann", "t1")
    clock.forward(GRACE_S + 1)
    await router.desk_beat("ann", "t2")
    await router.tick()
    assert await state_of(router, "ann") is AdviserState.AVAILABLE


async def test_an_unregistered_browser_phone_counts_as_unreachable(
    router: Router, clock: Clock
) -> None:
    await at_desk(router, "ann")
    await router.phone_reported("ann", "t1", PhoneState.UNREGISTERED)
    clock.forward(GRACE_S)
    await router.desk_beat("ann", "t1")
    await router.tick()
    assert await state_of(router, "ann") is AdviserState.AWAY
    await router.phone_reported("ann", "t1", PhoneState.REGISTERED)
    assert await state_of(router, "ann") is AdviserState.AVAILABLE


async def test_a_phone_number_device_does_not_depend_on_the_browser_phone(
    router: Router, clock: Clock
) -> None:
    await at_desk(router, "ann", device="+31201234567")
    await router.phone_reported("ann", "t1", PhoneState.UNREGISTERED)
    clock.forward(GRACE_S)
    await router.desk_beat("ann", "t1")
    await router.tick()
    assert await state_of(router, "ann") is AdviserState.AVAILABLE


async def test_advisers_without_a_desk_or_on_a_break_are_left_alone(
    router: Router, clock: Clock
) -> None:
    await router.board.register("api", skills=["vog_np"], device="client:api")
    await router.adviser_command("api", Command.AVAILABLE)  # never opened a desk
    await at_desk(router, "ann")
    await router.adviser_command("ann", Command.BREAK)
    await router.desk_gone("ann", "t1")
    clock.forward(GRACE_S * 3)
    await router.tick()
    assert await state_of(router, "api") is AdviserState.AVAILABLE
    assert await state_of(router, "ann") is AdviserState.BREAK
    await router.desk_beat("ann", "t2")
    assert await state_of(router, "ann") is AdviserState.BREAK  # back: still their choice


async def test_a_call_ringing_at_a_gone_desk_goes_back_to_the_head_of_the_line(
    router: Router, clock: Clock, telephony: RecordingTelephony, redis_client: aioredis.Redis
) -> None:
    await at_desk(router, "ann")
    await waiting_call(router.queue, "CA1")
    await waiting_call(router.queue, "CA2")
    await router.call_waiting("vog_np")
    view = await router.board.view("ann")
    assert view is not None and view.call_sid == "CA1"
    offer_id = view.offer_id
    assert offer_id is not None
    call_events = router.events.listen_call("CA1")
    await anext(call_events)
    await router.desk_gone("ann", "t1")
    clock.forward(GRACE_S)
    await router.tick()
    assert await state_of(router, "ann") is AdviserState.AWAY
    assert await router.queue.position("CA1", "vog_np") == 1  # ahead of CA2, as before
    assert await router.board.offer(offer_id) is None
    # The ringing ends: the call is sent to its connect URL, which queues a withdrawn offer.
    assert telephony.redirects[-1] == ("CA1", Urls().connect(offer_id))
    event = await anext(call_events)
    while not event[0]:
        event = await anext(call_events)
    assert event == (CallEvent.RETURNED.value, {})
    await call_events.aclose()


async def test_a_call_in_progress_is_left_alone_and_the_adviser_is_away_after_it(
    router: Router, clock: Clock
) -> None:
    await at_desk(router, "ann")
    await waiting_call(router.queue, "CA1")
    await router.call_waiting("vog_np")
    view = await router.board.view("ann")
    assert view is not None and view.offer_id is not None
    await router.answered(view.offer_id)
    await router.desk_gone("ann", "t1")  # the browser closes mid-call
    clock.forward(GRACE_S * 2)
    await router.tick()
    assert await state_of(router, "ann") is AdviserState.ON_CALL
    await router.dial_finished(view.offer_id, "completed")
    await router.tick()
    assert await state_of(router, "ann") is AdviserState.AWAY


@pytest.fixture
async def second_redis(redis_client: aioredis.Redis) -> AsyncIterator[aioredis.Redis]:
    """Another instance's own connection to the same Redis."""
    need_service(REDIS_UP, REDIS_SERVICE, "two instances need the real Redis")
    client = make_redis(REDIS_URL)
    yield client
    await client.aclose()


async def test_two_instances_sweep_at_once_and_the_adviser_goes_away_once(
    router: Router,
    second_redis: aioredis.Redis,
    clock: Clock,
    telephony: RecordingTelephony,
    history: History,
) -> None:
    other_history = History()
    other = make_router(second_redis, clock, telephony, other_history)
    await at_desk(router, "ann")
    await waiting_call(router.queue, "CA1")
    await router.call_waiting("vog_np")
    await at_desk(router, "bob")
    for name in ("ann", "bob"):
        await router.desk_gone(name, "t1")
    clock.forward(GRACE_S)
    await asyncio.gather(*(instance.tick() for instance in (router, other) for _ in range(3)))
    assert await state_of(router, "ann") is AdviserState.AWAY
    assert await state_of(other, "bob") is AdviserState.AWAY
    aways = [c for c in history.changes + other_history.changes if c[1] is AdviserState.AWAY]
    assert sorted(aways) == [("ann", AdviserState.AWAY), ("bob", AdviserState.AWAY)]
    assert await router.queue.position("CA1", "vog_np") == 1
    assert [r for r in telephony.redirects if r[0] == "CA1"][1:] == [
        ("CA1", Urls().connect("1"))
    ]  # offered once, taken back once


async def test_a_beat_on_one_instance_keeps_the_adviser_present_on_the_other(
    router: Router, second_redis: aioredis.Redis, clock: Clock, telephony: RecordingTelephony
) -> None:
    other = make_router(second_redis, clock, telephony, History())
    await at_desk(router, "ann")
    for _ in range(10):
        clock.forward(keys.DESK_BEAT_SECONDS)
        await router.desk_beat("ann", "t1")
        await other.tick()
    assert await state_of(other, "ann") is AdviserState.AVAILABLE
