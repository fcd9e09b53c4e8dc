"""The pipelined Redis client against the real Redis: the same answers as redis-py, many
commands in flight on one connection, and clear errors when Redis goes away or stops answering."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError, ConnectionError, DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from api.services import make_redis
from routing.events import EventBus
from routing.pipelined_redis import PipelinedRedis, _Line
from routing.resp import pack_command
from tests.conftest import REDIS_SERVICE, REDIS_UP, REDIS_URL, need_service

URL = f"{REDIS_URL.rsplit('/', 1)[0]}/11"  # a database of its own: these tests flush it


@pytest.fixture
async def clients() -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis]]:
    """The service's client and plain redis-py with its pool, on the same database."""
    need_service(REDIS_UP, REDIS_SERVICE, "the pipelined client speaks to a real Redis")
    ours, plain = make_redis(URL), aioredis.from_url(URL, protocol=2, decode_responses=True)
    assert isinstance(ours, PipelinedRedis)
    await plain.flushdb()
    yield ours, plain
    await plain.flushdb()
    await ours.aclose()
    await plain.aclose()


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    never_connected = aioredis.Connection()  # only its encoder is used
    for args in [
        ("SET", "k", "é", "", b"raw"),
        ("ZADD", "z", 1.5, "m", 1e20, 0.1, -2.5e-7, float("inf")),
        ("SET", "k", memoryview(b"mv"), bytearray(b"ba"), 10**30, -1),
        ("SCRIPT LOAD", "return 1"),
    ]:
        assert pack_command(args) == b"".join(never_connected.pack_command(*args))
    assert pack_command(["SET", "k", "é"]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n"
    assert pack_command(["EXPIRE", "k", 30]) == b"*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n30\r\n"
    assert pack_command(["SCRIPT LOAD", b"x"]) == b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$1\r\nx\r\n"
    assert pack_command(["ZADD", "z", 1.5, "m"]).count(b"$3\r\n1.5\r\n") == 1
    with pytest.raises(DataError):
        pack_command(["SET", "k", True])
    with pytest.raises(DataError):
        pack_command(["SET", "k", None])  # type: ignore[list-item]


async def test_answers_are_those_of_redis_py(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    ours, plain = clients
    await plain.hset("h", mapping={"seq": "2", "data": "x"})
    await plain.sadd("s", "a", "b")
    await plain.zadd("z", {"first": 1.0, "second": 2.5})
    await plain.set("k", "waarde é")
    await plain.rpush("l", "1", "2")
    reads = [
        lambda c: c.get("k"),
        lambda c: c.get("missing"),
        lambda c: c.hget("h", "seq"),
        lambda c: c.hgetall("h"),
        lambda c: c.smembers("s"),
        lambda c: c.zrange("z", 0, -1, withscores=True),
        lambda c: c.zrank("z", "second"),
        lambda c: c.zrangebyscore("z", "-inf", 2),
        lambda c: c.mget(["k", "missing"]),
        lambda c: c.exists("k", "h", "missing"),
        lambda c: c.lrange("l", 0, -1),
        lambda c: c.ttl("k"),
        lambda c: c.type("z"),
        lambda c: c.ping(),
    ]
    for read in reads:
        assert await read(ours) == await read(plain)
    assert await ours.set("n", "1", nx=True, ex=30) is True
    assert await ours.set("n", "2", nx=True, ex=30) is None  # as redis-py: None when not set
    assert await ours.incr("counter") == 1
    assert await ours.delete("n", "counter") == 2


async def test_many_commands_in_flight_each_get_their_own_answer(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    ours, plain = clients
    await plain.mset({f"key:{i}": f"value {i}" for i in range(500)})
    answers = await asyncio.gather(*(ours.get(f"key:{i}") for i in range(500)))
    assert answers == [f"value {i}" for i in range(500)]
    # One connection for all of them, not a pool's worth.
    ours_here = [
        c for c in await plain.client_list() if c.get("name") == "kcc-ivr" and c["db"] == "11"
    ]
    assert len(ours_here) == 1


async def test_a_script_reloads_itself_after_redis_forgot_it(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    ours, plain = clients
    script = ours.register_script("return ARGV[1] .. KEYS[1]")
    assert await script(keys=["k"], args=["a"]) == "ak"
    await plain.script_flush()  # a Redis restart or failover forgets every script
    assert await script(keys=["k"], args=["b"]) == "bk"


async def test_an_error_answer_raises_and_the_connection_stays_usable(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    ours, plain = clients
    await plain.set("text", "not a number")
    with pytest.raises(ResponseError, match="not an integer"):
        await ours.incr("text")
    with pytest.raises(ResponseError):
        await ours.eval("return redis.call('NOSUCHCOMMAND')", 0)
    assert await ours.get("text") == "not a number"


async def test_a_cancelled_command_does_not_shift_the_answers_of_later_ones(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    ours, plain = clients
    await plain.set("after", "right answer")
    # A script that keeps Redis busy for 100 ms: its caller gives up before the answer comes.
    busy = "local t = redis.call('TIME') local until = t[1] * 1e6 + t[2] + 100000 " + (
        "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= until return 'slow'"
    )
    slow = asyncio.create_task(ours.eval(busy, 0))
    await asyncio.sleep(0.02)
    slow.cancel()
    assert await ours.get("after") == "right answer"
    assert await ours.eval("return 'next'", 0) == "next"


async def test_the_database_and_name_of_the_url_are_used(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    ours, plain = clients
    await ours.set("where", "database 11")
    assert await plain.get("where") == "database 11"
    other = aioredis.from_url(f"{REDIS_URL.rsplit('/', 1)[0]}/0", decode_responses=True)
    try:
        listed = [c for c in await other.client_list() if c.get("name") == "kcc-ivr"]
        assert any(c["db"] == "11" for c in listed)
    finally:
        await other.aclose()


async def test_pipelines_and_pub_sub_still_work(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    ours, _ = clients
    async with ours.pipeline(transaction=True) as pipe:
        pipe.set("a", "1").incr("a").get("a")
        assert await pipe.execute() == [True, 2, "2"]
    pubsub = ours.pubsub()
    await pubsub.subscribe("news")
    try:
        await ours.publish("news", "hello")
        message = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                break
        assert message is not None and message["data"] == "hello"
    finally:
        await pubsub.aclose()


async def test_one_instance_holds_a_desk_event_stream_for_each_of_300_advisers(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    # Each open desk stream holds a pub/sub connection of the service's pool; redis-py's
    # default pool (100) refused the 100th desk of an instance (bench/load.py, 500 desks).
    ours, _ = clients
    bus = EventBus(ours)
    streams = [bus.listen(f"adviser{i:03d}") for i in range(300)]
    try:
        for stream in streams:
            assert await anext(stream) == ("", {})  # subscribed
        await bus.publish("adviser299", "offer", {"offer_id": "7"})
        event = ("", {})
        for _ in range(5):
            event = await anext(streams[299])
            if event[0]:
                break
        assert event == ("offer", {"offer_id": "7"})
    finally:
        for stream in streams:
            await stream.aclose()
        await bus.aclose()


async def test_after_a_lost_connection_the_next_command_connects_again(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    ours, plain = clients
    await ours.set("k", "before")
    killed = await plain.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    await asyncio.sleep(0.05)
    assert await ours.get("k") == "before"


async def test_nothing_listening_is_a_connection_error_at_once() -> None:
    client = make_redis("redis://127.0.0.1:1/0")
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            await client.get("k")
        assert time.monotonic() - started < 2
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _client_of_silent_server(
    *, close_after_reading: bool, socket_timeout: float
) -> AsyncIterator[PipelinedRedis]:
    """A client of a server that reads commands and never answers, or hangs up once it has one."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read(1024)
        if close_after_reading:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = PipelinedRedis.from_url(
        f"redis://127.0.0.1:{port}/0",
        protocol=2,
        decode_responses=True,
        socket_timeout=socket_timeout,
    )
    try:
        yield client
    finally:
        await client.aclose()
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_a_redis_that_stops_answering_is_a_timeout_not_a_hang() -> None:
    async with _client_of_silent_server(close_after_reading=False, socket_timeout=0.4) as client:
        started = time.monotonic()
        with pytest.raises(RedisTimeout):  # redis-py's, not the test's own limit of 5 s
            await asyncio.wait_for(asyncio.gather(client.get("a"), client.get("b")), 5)
        assert time.monotonic() - started < 1.5


async def test_a_connection_closed_mid_command_is_a_connection_error() -> None:
    async with _client_of_silent_server(close_after_reading=True, socket_timeout=5) as client:
        with pytest.raises(ConnectionError):
            await client.get("a")


async def test_a_value_that_is_not_utf8_is_an_error_for_its_reader_only(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    ours, _ = clients
    raw = aioredis.from_url(URL)  # bytes in, bytes out
    try:
        await raw.set("binary", b"\xff\xfe")
        await raw.set("text", b"fine")
    finally:
        await raw.aclose()
    answers = await asyncio.gather(
        ours.get("text"), ours.get("binary"), ours.get("text"), return_exceptions=True
    )
    assert answers[0] == answers[2] == "fine"  # as redis-py: the others in flight are unharmed
    assert isinstance(answers[1], UnicodeDecodeError)


async def test_errors_that_are_not_response_errors_keep_redis_py_classes(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    ours, _ = clients
    # A Redis still loading its data after a restart answers LOADING: redis-py's
    # BusyLoadingError (a ConnectionError), which the callers' outage handling expects.
    with pytest.raises(BusyLoadingError):
        await ours.eval("return redis.error_reply('LOADING Redis is loading the dataset')", 0)
    assert await ours.ping() is True


async def _connections_on_11(plain: aioredis.Redis) -> int:
    listed = await plain.client_list()
    return sum(1 for c in listed if c.get("name") == "kcc-ivr" and c["db"] == "11")


async def test_a_connect_cancelled_half_way_leaves_no_connection_behind(
    clients: tuple[aioredis.Redis, aioredis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[_Line] = []
    made = _Line.connection_made

    def remember(line: _Line, transport: asyncio.BaseTransport) -> None:
        lines.append(line)
        made(line, transport)

    monkeypatch.setattr(_Line, "connection_made", remember)
    client = make_redis(URL)
    for _ in range(5):
        known = len(lines)
        command = asyncio.create_task(client.get("k"))
        # Cancelled (the webhook's budget, a shutdown) once connected, while SELECT is out.
        while len(lines) == known or not lines[-1]._waiting:
            await asyncio.sleep(0)
        command.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await command
    await asyncio.sleep(0.1)
    assert all(line.closed for line in lines)
    assert await client.get("k") is None  # and the client still connects
    await client.aclose()


async def test_closing_the_client_while_it_connects_leaves_no_connection_behind(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    _, plain = clients
    client = make_redis(URL)
    command = asyncio.create_task(client.get("k"))
    await asyncio.sleep(0)  # the connect has started
    await client.aclose()
    with contextlib.suppress(ConnectionError):
        await command
    await asyncio.sleep(0.1)
    assert await _connections_on_11(plain) == 0
