"""The advisers working a product, for the callers' expected wait (advisers_working.lua): right
in every adviser state, one count for all instances for at most its TTL, and one read of every
adviser per TTL however many waitUrl fetches ask."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from api.services import make_redis
from routing import keys
from routing.board import AdviserBoard, AdviserState, Command
from routing.events import EventBus
from routing.presence import DeskPresence
from routing.queue import CallQueue
from routing.router import Router
from routing.sealing import Sealer
from routing.telephony import RecordingTelephony
from tests.conftest import REDIS_SERVICE, REDIS_UP, REDIS_URL, SECRET_KEY, need_service
from tests.support.routing_redis import PRODUCTS, Urls, waiting_call

GRACE_S = 20
NOT_WORKING = {AdviserState.OFFLINE, AdviserState.BREAK, AdviserState.AWAY}


class Clock:
    def __init__(self) -> None:
        self.ms = 1_795_000_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
async def other_client() -> AsyncIterator[aioredis.Redis]:
    """A second instance's connection to the same Redis (the real one: two processes share it)."""
    need_service(REDIS_UP, REDIS_SERVICE, "two instances need a shared Redis (CI has one)")
    client = make_redis(REDIS_URL)
    yield client
    await client.aclose()


def make_router(redis: aioredis.Redis, clock: Clock, *, working_ttl_ms: int) -> Router:
    return Router(
        board=AdviserBoard(redis, working_ttl_ms=working_ttl_ms),
        queue=CallQueue(redis, Sealer(SECRET_KEY)),
        telephony=RecordingTelephony(),
        events=EventBus(redis),
        urls=Urls(),
        now_ms=clock,
        products=PRODUCTS,
        wrap_up_seconds=30,
        presence=DeskPresence(redis, grace_seconds=GRACE_S),
    )


async def recounted(board: AdviserBoard) -> dict[str, int]:
    """Per product, the advisers working it, from every adviser's hash (what was done before)."""
    views = await board.views()
    return {p: sum(v.state not in NOT_WORKING and p in v.skills for v in views) for p in PRODUCTS}


async def counted(board: AdviserBoard) -> dict[str, int]:
    return {product: await board.working(product) for product in PRODUCTS}


async def test_the_count_agrees_with_a_full_recount_in_every_adviser_state(
    redis_client: aioredis.Redis,
) -> None:
    clock = Clock()
    router = make_router(redis_client, clock, working_ttl_ms=0)  # counted afresh on each read
    board = router.board
    seen: set[AdviserState] = set()

    async def check(expected: dict[str, int]) -> None:
        views = await board.views()
        seen.update(v.state for v in views)
        assert await counted(board) == await recounted(board) == expected, [
            (v.name, v.state.value, v.skills) for v in views
        ]

    for name, skills in (("ann", ["vog_np"]), ("bob", ["vog_np", "gva"]), ("cem", ["gva"])):
        await board.register(name, skills=skills, device=f"client:{name}")
        await router.desk_beat(name, "t1")
    await check({"vog_np": 0, "vog_rp": 0, "gva": 0, "general": 0})  # all offline
    for name in ("ann", "bob", "cem"):
        await router.adviser_command(name, Command.AVAILABLE)
    await check({"vog_np": 2, "vog_rp": 0, "gva": 2, "general": 0})
    await waiting_call(router.queue, "CA1")
    await router.call_waiting("vog_np")  # ann, the longest idle, is offered it
    assert (await board.view("ann")).state is AdviserState.OFFERED  # type: ignore[union-attr]
    await check({"vog_np": 2, "vog_rp": 0, "gva": 2, "general": 0})
    await router.answered("1")  # on_call
    await check({"vog_np": 2, "vog_rp": 0, "gva": 2, "general": 0})
    await router.dial_finished("1", "completed")  # wrap_up
    await check({"vog_np": 2, "vog_rp": 0, "gva": 2, "general": 0})
    clock.ms += 1000
    await router.adviser_command("ann", Command.READY)
    await waiting_call(router.queue, "CA2")
    await router.call_waiting("vog_np")  # bob, idle longer, is offered it and does not answer
    await router.dial_finished("2", "no-answer")
    assert (await board.view("bob")).state is AdviserState.MISSED  # type: ignore[union-attr]
    await check({"vog_np": 2, "vog_rp": 0, "gva": 2, "general": 0})  # ann took CA2 back
    await router.adviser_command("bob", Command.BREAK)
    await check({"vog_np": 1, "vog_rp": 0, "gva": 1, "general": 0})
    await router.desk_gone("cem", "t1")  # cem's desk is gone past the grace period: away
    clock.ms += (GRACE_S + 1) * 1000
    await router.desk_beat("ann", "t1")
    await router.desk_beat("bob", "t1")
    await router.tick()
    assert (await board.view("cem")).state is AdviserState.AWAY  # type: ignore[union-attr]
    await check({"vog_np": 1, "vog_rp": 0, "gva": 0, "general": 0})
    await router.desk_beat("cem", "t2")  # back: available again
    await check({"vog_np": 1, "vog_rp": 0, "gva": 1, "general": 0})
    await board.register("cem", skills=["gva", "general", "gva"], device="client:cem")
    await check({"vog_np": 1, "vog_rp": 0, "gva": 1, "general": 1})  # new skills count at once
    await router.adviser_command("cem", Command.OFFLINE)
    await check({"vog_np": 1, "vog_rp": 0, "gva": 0, "general": 0})
    assert seen == set(AdviserState)
    await redis_client.delete(keys.adviser("ann"))  # a hash that expired: its name stays in the set
    await check({"vog_np": 0, "vog_rp": 0, "gva": 0, "general": 0})
    assert not await redis_client.exists(keys.advisers_working())  # TTL 0: nothing kept


async def test_two_instances_answer_one_count_until_it_expires(
    redis_client: aioredis.Redis, other_client: aioredis.Redis
) -> None:
    first = AdviserBoard(redis_client, working_ttl_ms=60_000)
    second = AdviserBoard(other_client, working_ttl_ms=60_000)
    for name in ("ann", "bob", "cem"):
        await first.register(name, skills=["vog_np"], device=f"client:{name}")
        await first.command(name, Command.AVAILABLE, 1000)
    assert await first.working("vog_np") == 3
    assert await second.working("gva") == 0  # the same count: nobody works GVA
    await second.command("ann", Command.BREAK, 2000)
    # Counted once for both instances: neither recounts while the count is fresh.
    assert (await first.working("vog_np"), await second.working("vog_np")) == (3, 3)
    assert 59_000 < await redis_client.pttl(keys.advisers_working()) <= 60_000
    await redis_client.pexpire(keys.advisers_working(), 1)  # the count's time is up
    await asyncio.sleep(0.01)
    assert (await second.working("vog_np"), await first.working("vog_np")) == (2, 2)


async def test_the_count_is_kept_one_second_by_default(redis_client: aioredis.Redis) -> None:
    board = AdviserBoard(redis_client)
    await board.register("ann", skills=["vog_np"], device="client:ann")
    await board.command("ann", Command.AVAILABLE, 1000)
    assert await board.working("vog_np") == 1
    assert 0 < await redis_client.pttl(keys.advisers_working()) <= 1000
    await board.command("ann", Command.OFFLINE, 2000)
    await asyncio.sleep(1.05)
    assert await board.working("vog_np") == 0


async def commands(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def test_many_fetches_on_two_instances_read_every_adviser_once(
    redis_client: aioredis.Redis, other_client: aioredis.Redis
) -> None:
    instances = [AdviserBoard(redis_client), AdviserBoard(other_client)]
    async with redis_client.pipeline(transaction=False) as pipe:
        for i in range(500):
            state = AdviserState.AVAILABLE if i % 5 else AdviserState.BREAK
            pipe.hset(keys.adviser(f"a{i}"), mapping={"state": state.value, "skills": "vog_np"})
            pipe.sadd(keys.advisers(), f"a{i}")
        await pipe.execute()
    await instances[1].working("vog_np")  # both know the script
    await redis_client.delete(keys.advisers_working())
    before = await commands(redis_client)
    found = await asyncio.gather(*(instances[i % 2].working("vog_np") for i in range(40)))
    after = await commands(redis_client)
    assert found == [400] * 40
    ran = {name: after[name] - before.get(name, 0) for name in after}
    assert ran["evalsha"] == 40  # one script call per waitUrl fetch
    assert ran["hmget"] == 500  # every adviser read once, not once per fetch
    assert ran["smembers"] == 1
