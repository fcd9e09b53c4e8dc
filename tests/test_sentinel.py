"""Redis behind Sentinel: KCC_REDIS_URL as `redis+sentinel://`, refused at start-up when it
cannot be used, and a failover survived: callers hear the flow or the apology (never an
application error), staff routes answer 503 `redis_unavailable` until the new master is found,
and then the app writes to the new master, where what was replicated is still there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError

from api.cli.phone import Phone, parse_twiml
from api.redis_url import BadSentinelUrl, SentinelUrl, parse_sentinel_url
from api.services import make_redis
from api.settings import Settings
from routing import keys
from routing.events import RESYNC
from tests.conftest import AUTH_TOKEN, PUBLIC_URL
from tests.support.flow_drafts import edited
from tests.support.sentinel import MASTER_NAME, SentinelSet, sentinel_set
from tests.support.servers import clean_env, invoke_kcc
from tests.support.staff import SANNE, add_staff, signed_in

# Down after 1 s, then the Sentinel's vote and the replica's promotion: measured 3.1-3.5 s from
# the master's death to the first answer from the new one. The promise, with room for a busy CI.
RECOVERY_SECONDS = 8.0
# After the Sentinel names the new master: the instances ask every 0.5 s (api/web/app.py).
FOLLOW_SECONDS = 2.0
APOLOGY = "Excuses, er ging iets mis."
WELCOME = "Welkom bij Justis"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,sentinel-3/kcc",
            SentinelUrl(
                sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-3", 26379)),
                master="kcc",
            ),
        ),
        (
            "redis+sentinel://:s%40cret@[::1]:26379/mymaster/3/",
            SentinelUrl(sentinels=(("::1", 26379),), master="mymaster", db=3, password="s@cret"),
        ),
        (
            "REDIS+SENTINEL://kcc:pw@s1:1/m/0",
            SentinelUrl(sentinels=(("s1", 1),), master="m", username="kcc", password="pw"),
        ),
    ],
)
def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database(
    url: str, expected: SentinelUrl
) -> None:
    assert parse_sentinel_url(url) == expected
    assert Settings(redis_url=url).redis_url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://s1:26379", "the master name is missing after the Sentinels"),
        ("redis+sentinel://s1:26379/", "the master name is missing after the Sentinels"),
        ("redis+sentinel://s1:26379/m/zero", "the database must be a number, not 'zero'"),
        ("redis+sentinel://s1:26379/m/0/x", "after the master name only a database number"),
        ("redis+sentinel://s1:26379,,s2/m", "a Sentinel's host is empty"),
        ("redis+sentinel:///m", "a Sentinel's host is empty"),
        ("redis+sentinel://s1:port/m", "'s1:port' has no valid port"),
        ("redis+sentinel://s1:99999/m", "'s1:99999' has no valid port"),
        ("redis+sentinel://s1/m?ssl=true", "it takes no query string or fragment"),
        ("redis+sentinel://kcc@s1/m", "a user needs a password"),
    ],
)
def test_a_bad_sentinel_url_is_refused_saying_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(BadSentinelUrl) as refused:
        parse_sentinel_url(url)
    assert problem in str(refused.value)
    assert str(refused.value).endswith(
        "(the form is redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB])"
    )


def test_the_service_refuses_to_start_on_a_bad_sentinel_url_naming_the_setting(
    isolated: Path,
) -> None:
    bad = "redis+sentinel://:hunter2-secret@s1:26379,s2:26379"
    with pytest.raises(ValidationError) as refused:
        Settings(redis_url=bad)
    assert [error["loc"] for error in refused.value.errors()] == [("redis_url",)]
    assert "hunter2" not in str(refused.value)

    result = invoke_kcc("serve", env=clean_env(KCC_REDIS_URL=bad))
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: KCC_REDIS_URL: not a usable Sentinel URL: the master name is missing"
    )
    assert "hunter2" not in result.stderr and result.stdout == ""


# -- a real failover ---------------------------------------------------------------------------


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    """Requested before make_app: torn down after the apps have closed their clients."""
    folder = tmp_path / "sentinel"
    folder.mkdir()
    with sentinel_set(folder) as started:
        yield started


@pytest.fixture
async def http_to() -> AsyncIterator[Callable[[FastAPI], httpx.AsyncClient]]:
    made: list[httpx.AsyncClient] = []

    def client(app: FastAPI) -> httpx.AsyncClient:
        # An exception the app let through becomes the 500 a user would see, not a test error.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        made.append(httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL))
        return made[-1]

    yield client
    for one in made:
        await one.aclose()


async def queue_a_caller(http: httpx.AsyncClient) -> str:
    caller = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
    await caller.dial()
    await caller.press("1")
    await caller.press("4")
    turn = await caller.press("#")  # VOG for a person, no application number
    assert turn.queue == "kcc-vog_np", turn.text
    return caller.call_sid


async def waiting(http: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    answer = await http.get("/api/queue", headers=headers)
    assert answer.status_code == 200, answer.text
    return [call["call_sid"] for call in answer.json()]


@pytest.fixture
async def serving(
    sentinels: SentinelSet, make_app: Callable[..., FastAPI]
) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """Two instances on the Sentinel URL, running as a server runs them (their lifespans: the
    routing tick, the flow announcements' listener, the watch on the Sentinels)."""
    apps = make_app(redis_url=sentinels.url), make_app(redis_url=sentinels.url)
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield apps


async def served_flow_number(app: FastAPI, number: int) -> None:
    """Fails unless `app` serves flow version `number` within 2 s."""
    started = time.monotonic()
    while app.state.services.flows.pointer.number != number:
        assert time.monotonic() - started < 2.0, "the instance missed the publish"
        await asyncio.sleep(0.05)


async def subscribed(server: redis.Redis, instances: int) -> None:
    """Waits (2 s at most) until `instances` listen for flow announcements on `server`."""
    started = time.monotonic()
    channel = keys.flow_announcements()
    while server.pubsub_numsub(channel) != [(channel, instances)]:
        assert time.monotonic() - started < 2.0, server.pubsub_numsub(channel)
        await asyncio.sleep(0.05)


async def next_event(
    stream: AsyncIterator[tuple[str, dict[str, Any]]],
) -> tuple[str, dict[str, Any]]:
    """The stream's next event (not an idle tick), within 3 s."""
    started = time.monotonic()
    async for event, data in stream:
        if event:
            return event, data
        assert time.monotonic() - started < 3.0, "no event"
    raise AssertionError("the stream ended")


def kcc_clients(server: redis.Redis) -> int:
    """Connections the app holds to this server (its clients are named kcc-ivr)."""
    return sum(1 for client in server.client_list() if client["name"] == "kcc-ivr")


@pytest.mark.slow  # a master, a replica and a Sentinel: three redis-server processes
async def test_when_the_master_dies_the_app_answers_503_then_writes_to_the_new_one(
    sentinels: SentinelSet,
    serving: tuple[FastAPI, FastAPI],
    http_to: Callable[[FastAPI], httpx.AsyncClient],
) -> None:
    app, other = serving
    http = http_to(app)
    add_staff(app.state.services.db_engine, SANNE)
    headers = await signed_in(http, SANNE)  # the sign-in guard counts in Redis too

    first = await queue_a_caller(http)
    assert await waiting(http, headers) == [first]
    old_master, replica = sentinels.master_port(), sentinels.replica_port()
    with sentinels.server(old_master) as master:
        assert master.execute_command("WAIT", 1, 2000) == 1  # the replica has the queue

    sentinels.kill(old_master)
    died = time.monotonic()
    staff: list[tuple[int, str]] = []  # status and code of every staff answer meanwhile
    heard: list[str] = []  # what a new caller heard first, meanwhile
    while True:
        answer = await http.get("/api/queue", headers=headers)
        refused = answer.json() if answer.status_code != 200 else {}
        staff.append((answer.status_code, refused.get("code", "")))
        dialled = await Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN).post(
            f"{PUBLIC_URL}/twilio/voice", {"CallStatus": "ringing"}
        )
        assert dialled.status_code == 200, dialled.text
        heard.append(parse_twiml(dialled.text).text)
        if answer.status_code == 200:
            break
        assert time.monotonic() - died < RECOVERY_SECONDS, staff[-3:]
        await asyncio.sleep(0.1)
    recovered = time.monotonic() - died

    assert sentinels.master_port() == replica
    assert staff[-1] == (200, "")
    assert len(staff) > 1 and set(staff[:-1]) == {(503, "redis_unavailable")}, staff
    assert all(text.startswith(APOLOGY) or WELCOME in text for text in heard), heard
    assert heard[0].startswith(APOLOGY) and WELCOME in heard[-1]
    assert recovered < RECOVERY_SECONDS

    second = await queue_a_caller(http)
    assert await waiting(http, headers) == [first, second]
    with sentinels.server(replica) as new_master:
        assert new_master.execute_command("ROLE")[0] == "master"
        assert new_master.zrange(keys.queue("vog_np"), 0, -1) == [first, second]

    # A publish after the failover reaches the other instance through the new master.
    published = await http.post(
        "/api/flows/publish", json={"text": edited(), "comment": "na failover"}, headers=headers
    )
    assert published.status_code == 201, published.text
    await served_flow_number(other, 2)


@pytest.mark.slow  # a master, a replica and a Sentinel: three redis-server processes
async def test_after_a_sentinel_failover_the_app_leaves_the_old_master_that_still_lives(
    sentinels: SentinelSet,
    serving: tuple[FastAPI, FastAPI],
    http_to: Callable[[FastAPI], httpx.AsyncClient],
) -> None:
    """The old master takes writes until the Sentinel demotes it, up to 10 s later: whatever
    the app wrote there meanwhile would be lost. It must follow the Sentinel's word at once."""
    app, other = serving
    http = http_to(app)
    add_staff(app.state.services.db_engine, SANNE)
    headers = await signed_in(http, SANNE)
    first = await queue_a_caller(http)
    desk = other.state.services.router.events.listen("ann")  # a desk stream on the other one
    assert await anext(desk) == ("", {})
    old_master, replica = sentinels.master_port(), sentinels.replica_port()
    with sentinels.server(old_master) as master:
        assert master.execute_command("WAIT", 1, 2000) == 1
        await subscribed(master, 2)  # both instances listen for flow announcements here

        sentinels.ask_sentinel("SENTINEL", "FAILOVER", MASTER_NAME)
        switched = await sentinels.switch_to(replica)
        while kcc_clients(master) > 0:
            assert time.monotonic() - switched < FOLLOW_SECONDS, kcc_clients(master)
            await asyncio.sleep(0.05)
        left = time.monotonic() - switched
        assert master.execute_command("ROLE")[0] == "master"  # not demoted yet: it would take
    assert left < FOLLOW_SECONDS

    second = await queue_a_caller(http)
    assert await waiting(http, headers) == [first, second]
    with sentinels.server(replica) as new_master:
        assert new_master.zrange(keys.queue("vog_np"), 0, -1) == [first, second]
        await subscribed(new_master, 2)  # the listeners moved too
        # The desk stream's subscriber came back on the new master and told the stream so.
        assert await next_event(desk) == (RESYNC, {})
        assert new_master.pubsub_numsub(keys.adviser_events("ann")) == [
            (keys.adviser_events("ann"), 1)
        ]
    await app.state.services.router.events.publish("ann", "offer", {"call_sid": "CA1"})
    event = await next_event(desk)
    while event == (RESYNC, {}):  # a second reconnection on the way is allowed, said alike
        event = await next_event(desk)
    assert event == ("offer", {"call_sid": "CA1"})
    await desk.aclose()
    published = await http.post(
        "/api/flows/publish", json={"text": edited(), "comment": "na failover"}, headers=headers
    )
    assert published.status_code == 201, published.text
    await served_flow_number(other, 2)


@pytest.mark.slow  # a master, a replica and a Sentinel: three redis-server processes
async def test_a_write_to_a_master_that_became_a_replica_is_a_connection_error(
    sentinels: SentinelSet,
) -> None:
    """A demoted master answers READONLY: the command fails as Redis being away does (503 or
    the apology, never a 500), and the next command asks the Sentinels again."""
    client = make_redis(sentinels.url)
    try:
        await client.set("before", "1")
        master, other = sentinels.master_port(), sentinels.standalone()
        with sentinels.server(master) as demoted:
            demoted.execute_command("REPLICAOF", "127.0.0.1", other)  # the Sentinel knows not yet
        with pytest.raises(RedisConnectionError, match="the Redis master became a replica"):
            await client.set("after", "1")
        assert sentinels.master_port() == master  # still named: the next write fails alike
        with pytest.raises(RedisConnectionError, match="the Redis master became a replica"):
            await client.incr("after")
    finally:
        await client.aclose()
