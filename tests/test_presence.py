"""Presence in the real Redis: the desk's connection decides whether an adviser gets calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

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


# -- the sweep looks only at the advisers whose time is up (keys.presence_due) -----------------


async def commands_run(redis: aioredis.Redis) -> dict[str, int]:
    """How often Redis ran each command so far (those inside scripts included)."""
    stats = await redis.info("commandstats")
    return {name[len("cmdstat_") :]: int(s["calls"]) for name, s in stats.items()}


async def tick_commands(redis: aioredis.Redis, *instances: Router) -> dict[str, int]:
    """The commands one tick of each instance runs, by name (the INFO read itself left out)."""
    return await commands_of(redis, *(instance.tick() for instance in instances))


async def commands_of(redis: aioredis.Redis, *steps: Awaitable[object]) -> dict[str, int]:
    """The commands the steps run one after the other, by name (the INFO read left out)."""
    before = await commands_run(redis)
    for step in steps:
        await step
    after = await commands_run(redis)
    ran = {name: calls - before.get(name, 0) for name, calls in after.items()}
    ran["info"] -= 1
    return {name: calls for name, calls in ran.items() if calls}


async def beat_all(router: Router, names: list[str]) -> None:
    for name in names:
        await router.desk_beat(name, "t1")


async def test_an_idle_second_costs_the_same_with_one_desk_as_with_thirty(
    router: Router, second_redis: aioredis.Redis, clock: Clock, redis_client: aioredis.Redis
) -> None:
    other = make_router(second_redis, clock, RecordingTelephony(), History())
    await at_desk(router, "a00")
    for instance in (router, other):
        await instance.tick()  # an instance's first sweep looks at everyone
    clock.forward(1)
    one_desk = await tick_commands(redis_client, router, other)
    names = [f"a{i:02}" for i in range(30)]
    for name in names[1:]:
        await at_desk(router, name)
    for _ in range(3):  # the desks beat on; no tab expires, nobody's grace ends
        clock.forward(keys.DESK_BEAT_SECONDS)
        await beat_all(router, names)
        assert await tick_commands(redis_client, router, other) == one_desk
    assert "hmget" not in one_desk  # no adviser read
    presences = [p for p in (router.presence, other.presence) if p is not None]
    sweeps = [presence.sweep_due(clock.ms) for presence in presences]
    assert await commands_of(redis_client, *sweeps) == {"zrangebyscore": 2}  # one read each
    for name in names:
        assert await state_of(router, name) is AdviserState.AVAILABLE


async def test_the_sweep_reads_only_the_adviser_whose_grace_ended_and_reports_it_once(
    router: Router,
    second_redis: aioredis.Redis,
    clock: Clock,
    history: History,
    redis_client: aioredis.Redis,
) -> None:
    other_history = History()
    other = make_router(second_redis, clock, RecordingTelephony(), other_history)
    names = [f"a{i:02}" for i in range(30)]
    for name in names:
        await at_desk(router, name)
    for instance in (router, other):
        await instance.tick()
    await router.desk_gone("a07", "t1")
    clock.forward(GRACE_S)
    await beat_all(router, [n for n in names if n != "a07"])
    ran = await tick_commands(redis_client, router, other)
    assert ran["hmget"] == 1  # a07 alone, by the first instance; away, she is not due again
    assert await state_of(router, "a07") is AdviserState.AWAY
    ran = await tick_commands(redis_client, router, other)
    assert "hmget" not in ran  # away with the desk gone: nothing to look at until it is back
    await router.desk_gone("a13", "t1")  # now both instances find her due at the same moment
    clock.forward(GRACE_S)
    await beat_all(router, [n for n in names if n not in ("a07", "a13")])
    await asyncio.gather(*(instance.tick() for instance in (router, other) for _ in range(3)))
    assert await state_of(other, "a13") is AdviserState.AWAY
    aways = [c for c in history.changes + other_history.changes if c[1] is AdviserState.AWAY]
    assert sorted(aways) == [("a07", AdviserState.AWAY), ("a13", AdviserState.AWAY)]
    await router.desk_beat("a07", "t2")
    assert await state_of(other, "a07") is AdviserState.AVAILABLE


async def test_an_adviser_back_to_work_with_the_desk_still_gone_is_away_at_the_next_tick(
    router: Router, clock: Clock, history: History
) -> None:
    await at_desk(router, "ann")
    await at_desk(router, "bob")
    await router.adviser_command("bob", Command.BREAK)
    for name in ("ann", "bob"):
        await router.desk_gone(name, "t1")
    clock.forward(GRACE_S)
    await router.tick()
    clock.forward(60)
    await router.tick()
    assert (await state_of(router, "ann"), await state_of(router, "bob")) == (
        AdviserState.AWAY,
        AdviserState.BREAK,
    )
    for name in ("ann", "bob"):  # by the API, as from a desk whose stream is gone
        assert await router.adviser_command(name, Command.AVAILABLE) is AdviserState.AVAILABLE
    await router.tick()
    assert (await state_of(router, "ann"), await state_of(router, "bob")) == (
        AdviserState.AWAY,
        AdviserState.AWAY,
    )
    aways = [c for c in history.changes if c[1] is AdviserState.AWAY]
    assert aways == [
        ("ann", AdviserState.AWAY),
        ("ann", AdviserState.AWAY),
        ("bob", AdviserState.AWAY),
    ]


async def test_after_redis_is_lost_the_desks_beat_again_and_are_followed_again(
    router: Router, clock: Clock, redis_client: aioredis.Redis
) -> None:
    await at_desk(router, "ann")
    await router.tick()
    await redis_client.flushdb()  # Redis restarted empty: the due set is gone with the rest
    await router.board.register("ann", skills=["vog_np"], device="client:ann")
    await router.adviser_command("ann", Command.AVAILABLE)  # as the recovery restores her
    clock.forward(keys.DESK_BEAT_SECONDS)
    await router.desk_beat("ann", "t1")  # her desk's stream beats on within 5 s
    assert await redis_client.zscore(keys.presence_due(), "ann") == (
        clock.ms + keys.DESK_TAB_LIVE_MS
    )
    await router.desk_gone("ann", "t1")
    clock.forward(GRACE_S)
    await router.tick()
    assert await state_of(router, "ann") is AdviserState.AWAY


async def test_an_instance_started_after_a_desk_went_looks_at_every_adviser_first(
    redis_client: aioredis.Redis, clock: Clock, telephony: RecordingTelephony
) -> None:
    history = History()
    old = make_router(redis_client, clock, telephony, History())
    await at_desk(old, "ann")
    await old.desk_gone("ann", "t1")
    await redis_client.delete(keys.presence_due())  # as a version without the due set left it
    clock.forward(GRACE_S)
    new = make_router(redis_client, clock, telephony, history)
    await new.tick()
    assert await state_of(new, "ann") is AdviserState.AWAY
    assert history.changes == [("ann", AdviserState.AWAY)]
