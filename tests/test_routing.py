"""Routing in the real Redis: who gets which call, atomically, and what happens to each offer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from routing import keys
from routing.board import AdviserBoard, AdviserState, Command, InvalidTransition, Settle
from routing.events import EventBus
from routing.queue import CallQueue
from routing.router import Router
from routing.sealing import Sealer
from routing.telephony import RecordingTelephony, TelephonyError
from tests.conftest import SECRET_KEY
from tests.support.routing_redis import PRODUCTS, Urls, waiting_call


class FlakyTelephony(RecordingTelephony):
    """Fails the next `failures` redirects the way TwilioTelephony does after its retries."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def redirect(self, call_sid: str, url: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise TelephonyError("Twilio answered 503 four times", permanent=False, status=503)
        await super().redirect(call_sid, url)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_795_000_000_000

    def __call__(self) -> int:
        self.ms += 1
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(redis_client: aioredis.Redis) -> CallQueue:
    return CallQueue(redis_client, Sealer(SECRET_KEY))


@pytest.fixture
def board(redis_client: aioredis.Redis) -> AdviserBoard:
    return AdviserBoard(redis_client)


@pytest.fixture
def telephony() -> RecordingTelephony:
    return RecordingTelephony()


@pytest.fixture
async def router(
    board: AdviserBoard,
    queue: CallQueue,
    telephony: RecordingTelephony,
    redis_client: aioredis.Redis,
    clock: Clock,
) -> AsyncIterator[Router]:
    router = Router(
        board=board,
        queue=queue,
        telephony=telephony,
        events=EventBus(redis_client),
        urls=Urls(),
        now_ms=clock,
        products=PRODUCTS,
        wrap_up_seconds=30,
    )
    yield router
    await router.events.aclose()  # its event streams' Redis connection


async def adviser(
    board: AdviserBoard, name: str, skills: list[str], now: int, *, available: bool = True
) -> None:
    await board.register(name, skills=skills, device=f"client:{name}")
    if available:
        await board.command(name, Command.AVAILABLE, now)


async def test_waiting_call_goes_to_the_longest_idle_adviser_with_the_skill(
    board: AdviserBoard, queue: CallQueue
) -> None:
    await adviser(board, "ann", ["vog_np"], now=3000)
    await adviser(board, "bob", ["vog_np"], now=1000)  # idle longest
    await adviser(board, "cas", ["gva"], now=500)  # idle even longer, but not for VOG
    await waiting_call(queue, "CA1")
    [offer] = await board.match(["vog_np"], 5000)
    assert (offer.call_sid, offer.adviser) == ("CA1", "bob")


async def test_available_adviser_takes_the_longest_waiting_call_they_can_handle(
    board: AdviserBoard, queue: CallQueue
) -> None:
    await waiting_call(queue, "CA-gva", product="gva")  # earliest, but ann cannot take it
    await waiting_call(queue, "CA-np-1", product="vog_np")
    await waiting_call(queue, "CA-rp", product="vog_rp")
    await waiting_call(queue, "CA-np-2", product="vog_np")
    await adviser(board, "ann", ["vog_np", "vog_rp"], now=1000)
    [offer] = await board.match(["vog_np", "vog_rp"], 2000)
    assert offer.call_sid == "CA-np-1"


async def test_higher_priority_goes_first(board: AdviserBoard, queue: CallQueue) -> None:
    await waiting_call(queue, "CA-early", product="vog_np")
    await waiting_call(queue, "CA-urgent", product="vog_rp", priority=5)
    await adviser(board, "ann", ["vog_np", "vog_rp"], now=1000)
    [offer] = await board.match(["vog_np", "vog_rp"], 2000)
    assert offer.call_sid == "CA-urgent"


async def test_nobody_gets_two_calls_and_no_call_goes_twice_under_concurrency(
    board: AdviserBoard, queue: CallQueue
) -> None:
    for n in range(40):
        await waiting_call(queue, f"CA{n:02d}", product=PRODUCTS[n % 3])
    for n in range(25):
        await adviser(board, f"adv{n:02d}", [PRODUCTS[n % 3], PRODUCTS[(n + 1) % 3]], now=1000 + n)
    rounds = await asyncio.gather(*(board.match(PRODUCTS, 5000 + i) for i in range(20)))
    offers = [offer for made in rounds for offer in made]
    assert len(offers) == 25  # every adviser busy, 15 calls still waiting
    assert len({o.call_sid for o in offers}) == 25
    assert len({o.adviser for o in offers}) == 25
    for offer in offers:
        view = await board.view(offer.adviser)
        assert (
            view is not None
            and view.state is AdviserState.OFFERED
            and view.call_sid == offer.call_sid
        )


@pytest.mark.parametrize(
    ("start", "command", "code", "reason"),
    [
        ("offline", Command.BREAK, "sign_in_first", "sign in (available) before taking a break"),
        (
            "offline",
            Command.READY,
            "not_in_wrap_up",
            "ready is for the end of wrap-up; you are offline",
        ),
        ("offered", Command.AVAILABLE, "call_in_progress", "you have a call; it ends first"),
        ("offered", Command.OFFLINE, "call_in_progress", "you have a call; it ends first"),
        ("offered", Command.BREAK, "break_after_call", "you have a call; take a break after it"),
    ],
)
async def test_invalid_transitions_are_refused_with_the_reason(
    board: AdviserBoard, queue: CallQueue, start: str, command: Command, code: str, reason: str
) -> None:
    await adviser(board, "ann", ["vog_np"], now=1000, available=start != "offline")
    if start == "offered":
        await waiting_call(queue, "CA1")
        await board.match(["vog_np"], 2000)
    with pytest.raises(InvalidTransition) as refused:
        await board.command("ann", command, 3000)
    assert (refused.value.code, str(refused.value)) == (code, reason)


async def test_missed_offer_puts_the_call_back_at_the_head_and_parks_the_adviser(
    board: AdviserBoard, queue: CallQueue
) -> None:
    await waiting_call(queue, "CA1")
    await waiting_call(queue, "CA2")
    await adviser(board, "ann", ["vog_np"], now=1000)
    [offer] = await board.match(["vog_np"], 2000)
    settled = await board.settle(offer.offer_id, Settle.MISSED, 3000)
    assert settled is not None and settled.adviser_state is AdviserState.MISSED
    assert await queue.position("CA1", "vog_np") == 1  # its old place, ahead of CA2
    assert await board.match(["vog_np"], 4000) == []  # a missed adviser gets nothing
    await board.command("ann", Command.AVAILABLE, 5000)
    [again] = await board.match(["vog_np"], 6000)
    assert again.call_sid == "CA1"


async def test_router_moves_the_call_and_pops_the_card_on_the_advisers_desk(
    router: Router,
    board: AdviserBoard,
    queue: CallQueue,
    telephony: RecordingTelephony,
    redis_client: aioredis.Redis,
) -> None:
    await adviser(board, "ann", ["vog_np"], now=1000, available=False)
    await adviser(board, "bob", ["vog_np"], now=1000, available=False)
    events = router.events.listen("ann")
    others = router.events.listen("bob")
    await anext(events), await anext(others)  # subscribed
    await router.adviser_command("ann", Command.AVAILABLE)
    await waiting_call(queue, "CA1")
    await router.call_waiting("vog_np")
    assert telephony.redirects == [("CA1", "https://ivr.example.nl/twilio/connect?offer=1")]
    received = await next_events(events, 3)
    assert [name for name, _ in received] == ["state", "offer", "state"]  # available, ring, offered
    card = received[1][1]
    assert (
        card["call_sid"] == "CA1" and card["caller"] == "+31612345678" and card["offer_id"] == "1"
    )
    assert [e for e in await next_events(others, 1, timeout=1.5) if e[0] == "offer"] == []


async def next_events(
    stream: AsyncIterator[tuple[str, dict[str, Any]]], count: int, timeout: float = 3
) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []

    async def collect() -> None:
        async for event, data in stream:
            if event:
                found.append((event, data))
                if len(found) == count:
                    return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), timeout)
    return found


async def test_redirect_failing_after_retries_puts_the_call_back_and_frees_the_adviser(
    board: AdviserBoard, queue: CallQueue, redis_client: aioredis.Redis, clock: Clock
) -> None:
    flaky = FlakyTelephony(failures=1)
    router = Router(
        board=board,
        queue=queue,
        telephony=flaky,
        events=EventBus(redis_client),
        urls=Urls(),
        now_ms=clock,
        products=PRODUCTS,
    )
    await adviser(board, "ann", ["vog_np"], now=1000)
    await waiting_call(queue, "CA1")
    await router.call_waiting("vog_np")
    view = await board.view("ann")
    assert view is not None and view.state is AdviserState.AVAILABLE
    assert await queue.position("CA1", "vog_np") == 1
    await router.tick()  # the next try succeeds
    assert flaky.redirects == [("CA1", "https://ivr.example.nl/twilio/connect?offer=2")]


async def test_caller_gone_before_the_redirect_is_dropped(
    router: Router, board: AdviserBoard, queue: CallQueue, telephony: RecordingTelephony
) -> None:
    telephony.gone.add("CA1")
    await adviser(board, "ann", ["vog_np"], now=1000)
    await waiting_call(queue, "CA1")
    await router.call_waiting("vog_np")
    assert await queue.get("CA1") is None
    view = await board.view("ann")
    assert view is not None and view.state is AdviserState.AVAILABLE


async def test_answered_then_finished_means_wrap_up_then_available(
    router: Router, board: AdviserBoard, queue: CallQueue, clock: Clock
) -> None:
    await adviser(board, "ann", ["vog_np"], now=1000)
    await waiting_call(queue, "CA1")
    await router.call_waiting("vog_np")
    await router.answered("1")
    assert (await board.view("ann")).state is AdviserState.ON_CALL  # type: ignore[union-attr]
    await router.dial_finished("1", "completed")
    view = await board.view("ann")
    assert view is not None and view.state is AdviserState.WRAP_UP and view.call_sid == "CA1"
    assert await queue.handle_times("vog_np")
    clock.ms += 31_000
    await router.tick()
    assert (await board.view("ann")).state is AdviserState.AVAILABLE  # type: ignore[union-attr]


async def test_unanswered_offer_sends_the_call_back_and_parks_the_adviser(
    router: Router, board: AdviserBoard, queue: CallQueue
) -> None:
    await adviser(board, "ann", ["vog_np"], now=1000)
    await adviser(board, "bob", ["vog_np"], now=2000, available=False)
    await waiting_call(queue, "CA1")
    await router.call_waiting("vog_np")
    await router.adviser_command("bob", Command.AVAILABLE)  # no call left for bob yet
    await router.dial_finished("1", "no-answer")
    assert (await board.view("ann")).state is AdviserState.MISSED  # type: ignore[union-attr]
    view = await board.view("bob")
    assert view is not None and view.state is AdviserState.OFFERED and view.call_sid == "CA1"


async def test_stale_offer_is_taken_back_by_the_timer(
    router: Router, board: AdviserBoard, queue: CallQueue, clock: Clock
) -> None:
    await adviser(board, "ann", ["vog_np"], now=1000)
    await waiting_call(queue, "CA1")
    await router.call_waiting("vog_np")
    clock.ms += 60_000  # Twilio never reported back: a lost event
    await router.tick()
    assert (await board.view("ann")).state is AdviserState.MISSED  # type: ignore[union-attr]
    assert await queue.position("CA1", "vog_np") == 1


async def test_caller_hanging_up_during_the_offer_frees_the_adviser(
    router: Router, board: AdviserBoard, queue: CallQueue, redis_client: aioredis.Redis
) -> None:
    await adviser(board, "ann", ["vog_np"], now=1000)
    await waiting_call(queue, "CA1")
    await router.call_waiting("vog_np")
    await router.caller_gone("CA1")
    assert (await board.view("ann")).state is AdviserState.AVAILABLE  # type: ignore[union-attr]
    assert await redis_client.exists(keys.offer("1"), keys.call_offer("CA1")) == 0


async def test_caller_hanging_up_mid_conversation_starts_wrap_up(
    router: Router, board: AdviserBoard, queue: CallQueue
) -> None:
    await adviser(board, "ann", ["vog_np"], now=1000)
    await waiting_call(queue, "CA1")
    await router.call_waiting("vog_np")
    await router.answered("1")
    await router.caller_gone("CA1")
    assert (await board.view("ann")).state is AdviserState.WRAP_UP  # type: ignore[union-attr]


async def test_every_routing_key_has_a_ttl(
    router: Router, board: AdviserBoard, queue: CallQueue, redis_client: aioredis.Redis
) -> None:
    await adviser(board, "ann", ["vog_np"], now=1000)
    await adviser(board, "bob", ["vog_np", "gva"], now=1000)
    await waiting_call(queue, "CA1")
    await waiting_call(queue, "CA2", product="gva")
    await router.call_waiting("vog_np")
    await router.answered("1")
    await router.dial_finished("1", "completed")
    names = await redis_client.keys("*")
    # Not an empty loop: the advisers, the waiting call and the answered one are all there.
    assert {
        keys.advisers(),
        keys.adviser("ann"),
        keys.adviser("bob"),
        keys.queue("gva"),
        keys.queue_entry("CA2"),
        keys.call_answered("CA1"),
    } <= set(names), names
    for name in names:
        assert await redis_client.ttl(name) > 0, name
