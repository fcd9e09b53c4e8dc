"""One Redis pub/sub connection per instance for all its event streams (routing/fanout.py), on
the real Redis: how many connections, who gets which event, a stream that stops reading, a lost
connection. The Sentinel failover is in tests/test_sentinel.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from api.services import make_redis
from routing import keys
from routing.events import RESYNC, EventBus
from routing.fanout import QUEUE_SIZE
from tests.conftest import REDIS_SERVICE, REDIS_UP, REDIS_URL, need_service

DB = int(REDIS_URL.rsplit("/", 1)[1])
Stream = AsyncIterator[tuple[str, dict[str, Any]]]


@pytest.fixture
async def plain() -> AsyncIterator[aioredis.Redis]:
    """A client of our own, to look at Redis' side: its clients and channels."""
    need_service(REDIS_UP, REDIS_SERVICE, "the subscriber is one connection of a real Redis")
    client = aioredis.from_url(REDIS_URL, protocol=2, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def instances() -> AsyncIterator[list[EventBus]]:
    """Two instances' event buses, each on its own Redis client as `kcc serve` makes it."""
    clients = [make_redis(REDIS_URL), make_redis(REDIS_URL)]
    buses = [EventBus(client) for client in clients]
    yield buses
    for bus, client in zip(buses, clients, strict=True):
        await bus.aclose()
        await client.aclose()


async def subscribers(plain: aioredis.Redis) -> dict[int, int]:
    """The service's pub/sub connections to this database: client id -> channels."""
    listed = await plain.client_list(_type="pubsub")
    return {
        int(c["id"]): int(c["sub"]) for c in listed if c["name"] == "kcc-ivr" and int(c["db"]) == DB
    }


async def until(check: Any, seconds: float = 3.0) -> None:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, "not within the time"
        await asyncio.sleep(0.05)


async def opened(bus: EventBus, adviser: str) -> Stream:
    stream = bus.listen(adviser)
    assert await anext(stream) == ("", {})  # subscribed
    return stream


async def events_of(stream: Stream, count: int, *, quiet: bool = False) -> list[str]:
    """The names of the next `count` events (fewer if they do not come within 3 s); `quiet`:
    and then none until the stream's next idle tick (a second without events)."""
    found: list[str] = []
    deadline = time.monotonic() + 3.0
    async for event, _ in stream:  # never cancelled: that would end the stream
        if event:
            found.append(event)
        elif len(found) >= count or time.monotonic() > deadline:
            break  # an idle tick
        if len(found) >= count and not quiet:
            break
    return found


async def channel_listeners(plain: aioredis.Redis, adviser: str) -> int:
    channel = keys.adviser_events(adviser)
    [(_, count)] = await plain.pubsub_numsub(channel)
    return int(count)


async def test_fifty_streams_on_one_instance_use_one_redis_connection(
    instances: list[EventBus], plain: aioredis.Redis
) -> None:
    bus = instances[0]
    assert await subscribers(plain) == {}
    streams = [await opened(bus, f"fan-{i:02d}") for i in range(40)]
    streams += [await opened(bus, f"fan-{i:02d}") for i in range(10)]  # second tabs
    assert list((await subscribers(plain)).values()) == [40]  # one connection, 40 channels
    assert await channel_listeners(plain, "fan-00") == 1
    assert bus.fanout.channels() == {
        keys.adviser_events(f"fan-{i:02d}"): 2 if i < 10 else 1 for i in range(40)
    }

    for stream in streams:
        await stream.aclose()  # type: ignore[attr-defined]

    async def unsubscribed() -> bool:
        return await subscribers(plain) == {}

    async def let_go() -> bool:  # no stream left: the connection is closed a second later
        listed = await plain.client_list()
        return not [c for c in listed if c["name"] == "kcc-ivr" and int(c["db"]) == DB]

    await until(unsubscribed, 1.0)
    await until(let_go)
    assert await channel_listeners(plain, "fan-00") == 0


async def test_an_event_reaches_exactly_the_streams_of_its_adviser(
    instances: list[EventBus],
) -> None:
    bus = instances[0]
    ann_tab1, ann_tab2 = await opened(bus, "fan-ann"), await opened(bus, "fan-ann")
    bob, cas = await opened(bus, "fan-bob"), await opened(bus, "fan-cas")
    for event in ("offer", "state", "connected"):
        await bus.publish("fan-ann", event, {"call_sid": "CA1"})
    await bus.publish("fan-bob", "state", {"status": "available"})

    assert await events_of(ann_tab1, 3) == ["offer", "state", "connected"]
    assert await events_of(ann_tab2, 3, quiet=True) == ["offer", "state", "connected"]
    assert await events_of(bob, 1, quiet=True) == ["state"]
    assert await events_of(cas, 0) == []
    for stream in (ann_tab1, ann_tab2, bob, cas):
        await stream.aclose()  # type: ignore[attr-defined]


async def test_a_desk_reopened_while_its_channel_is_being_let_go_gets_its_events(
    instances: list[EventBus],
) -> None:
    """A reload: the tab's last stream closes and the new one opens before the unsubscribe ran.
    The channel stays subscribed; the new stream must not wait for a confirmation that never
    comes again (it failed after 5 s with "could not subscribe")."""
    bus = instances[0]
    first = await opened(bus, "fan-reload")
    await first.aclose()  # type: ignore[attr-defined]
    started = time.monotonic()
    again = await opened(bus, "fan-reload")  # the unsubscribe is scheduled, not run yet
    assert time.monotonic() - started < 1.0
    await bus.publish("fan-reload", "offer", {"call_sid": "CA1"})
    assert await events_of(again, 1) == ["offer"]
    await again.aclose()  # type: ignore[attr-defined]


async def test_two_instances_hold_one_connection_each_and_both_deliver(
    instances: list[EventBus], plain: aioredis.Redis
) -> None:
    one, two = instances
    ann_on_one, ann_on_two = await opened(one, "fan-ann"), await opened(two, "fan-ann")
    bob_on_two = await opened(two, "fan-bob")
    assert sorted((await subscribers(plain)).values()) == [1, 2]
    assert await channel_listeners(plain, "fan-ann") == 2  # one per instance, not per stream

    await one.publish("fan-ann", "offer", {"call_sid": "CA1"})  # from either instance
    await one.publish("fan-bob", "offer", {"call_sid": "CA2"})
    assert await events_of(ann_on_one, 1) == ["offer"]
    assert await events_of(ann_on_two, 1) == ["offer"]
    assert await events_of(bob_on_two, 1) == ["offer"]
    for stream in (ann_on_one, ann_on_two, bob_on_two):
        await stream.aclose()  # type: ignore[attr-defined]


async def test_a_stream_that_stops_reading_is_closed_and_the_others_get_every_event(
    instances: list[EventBus], plain: aioredis.Redis
) -> None:
    bus = instances[0]
    stuck = await opened(bus, "fan-ann")  # a browser that stopped taking data
    other_tab, bob = await opened(bus, "fan-ann"), await opened(bus, "fan-bob")
    sent = QUEUE_SIZE + 6
    reading = [
        asyncio.create_task(events_of(other_tab, sent, quiet=True)),
        asyncio.create_task(events_of(bob, 1, quiet=True)),
    ]
    for number in range(sent):
        await bus.publish("fan-ann", "state", {"n": number})
    await bus.publish("fan-bob", "offer", {"call_sid": "CA1"})

    assert [len(found) for found in await asyncio.gather(*reading)] == [sent, 1]
    assert [event async for event in stuck] == []  # closed: it ends without the old events
    assert bus.fanout.dropped == 1
    assert bus.fanout.channels() == {
        keys.adviser_events("fan-ann"): 1,
        keys.adviser_events("fan-bob"): 1,
    }
    assert list((await subscribers(plain)).values()) == [2]
    assert await channel_listeners(plain, "fan-ann") == 1
    for stream in (other_tab, bob):
        await stream.aclose()  # type: ignore[attr-defined]


async def test_after_a_lost_connection_each_stream_is_told_once_and_events_flow_again(
    instances: list[EventBus], plain: aioredis.Redis
) -> None:
    bus = instances[0]
    ann, bob = await opened(bus, "fan-ann"), await opened(bus, "fan-bob")
    [before] = await subscribers(plain)
    await plain.client_kill_filter(_id=before)

    assert await events_of(ann, 1) == [RESYNC]  # subscribed again: read the state again
    assert await events_of(bob, 1, quiet=True) == [RESYNC]  # once
    [after] = await subscribers(plain)
    assert after != before and (await subscribers(plain))[after] == 2
    await bus.publish("fan-ann", "offer", {"call_sid": "CA1"})
    assert await events_of(ann, 1) == ["offer"]
    for stream in (ann, bob):
        await stream.aclose()  # type: ignore[attr-defined]
