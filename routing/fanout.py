"""One Redis pub/sub connection per instance, fanned out to the event streams it serves.

Each open desk stream (and the demo's call streams) used to hold a pub/sub connection of its own:
500 desks were 500 Redis connections per instance. A `Fanout` holds one, subscribes a channel
when the first local stream of it opens and unsubscribes when the last one closes, and hands
every message to the streams of its channel through a bounded queue of their own.

Why a subscription per channel and not one pattern (`events:*`): with a pattern every instance
would receive every desk's events and drop those of desks it does not serve (most of them once
there are several instances), and Redis matches the pattern on every PUBLISH; channel by channel,
an event goes only to the instance that holds its desk, and the same channels map onto sharded
pub/sub (SSUBSCRIBE) on a cluster.

A stream that does not read (a browser that stopped taking data) fills its queue and is closed,
its queue dropped: the reader of the connection never waits for a stream, so one slow stream
holds up no other. When the connection is lost (Redis restarted, a Sentinel failover closed it)
the reader connects again and subscribes every channel that still has streams; each stream that
was already listening is then given `RESYNC`, since what was published meanwhile is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger(__name__)

Event = tuple[str, dict[str, Any]]
TICK: Event = ("", {})  # "subscribed" as the first item, then an idle second
# The subscription was made again after a lost connection: events may have been missed.
RESYNC = "resync"
# Unread events a stream may hold; a desk gets a few a minute, so this is a stream that stopped.
QUEUE_SIZE = 64
SUBSCRIBE_SECONDS = 5.0  # a stream that is not subscribed by then fails as Redis being away does
IDLE_SECONDS = 1.0
RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0)  # between attempts to connect again, the last repeated


@dataclass(eq=False)
class _Stream:
    queue: asyncio.Queue[Event]
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # its subscription is in place
    closed: bool = False  # it fell behind: it ends without reading what is queued


class Fanout:
    def __init__(self, redis: Redis, *, queue_size: int = QUEUE_SIZE) -> None:
        self._redis = redis
        self._queue_size = queue_size
        self._streams: dict[str, set[_Stream]] = {}
        self._requested: set[str] = set()  # channels subscribed (or asked) on this connection
        self._confirmed: set[str] = set()  # ... and confirmed by Redis
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # SUBSCRIBE and UNSUBSCRIBE go out in the order decided
        self._chores: set[asyncio.Task[None]] = set()
        self.dropped = 0  # streams closed because they fell behind

    def listen(self, channel: str) -> AsyncGenerator[Event, None]:
        """The channel's events as (event, data) until the caller stops iterating. The first
        item, `TICK`, comes once the subscription is in place; `TICK` also marks idle seconds,
        and (RESYNC, {}) a subscription made again. Ends when the stream falls behind."""
        return self._listen(channel)

    def channels(self) -> dict[str, int]:
        """The channels with streams here, and how many each has."""
        return {channel: len(streams) for channel, streams in self._streams.items()}

    async def aclose(self) -> None:
        reader, self._reader = self._reader, None
        for task in [reader, *self._chores]:
            if task is not None and task.get_loop() is asyncio.get_running_loop():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for streams in self._streams.values():
            for stream in streams:
                stream.closed = True
        self._streams.clear()

    async def _listen(self, channel: str) -> AsyncGenerator[Event, None]:
        self._start()
        stream = _Stream(asyncio.Queue(self._queue_size))
        joined = channel in self._streams
        self._streams.setdefault(channel, set()).add(stream)
        try:
            if not joined:
                await self._sync(channel)
            # Subscribed already: by a stream before this one, or still, when the last stream
            # left just now and the unsubscribe had not run yet (it then finds this stream and
            # keeps the channel; no confirmation comes again).
            if channel in self._confirmed:
                stream.ready.set()
            try:
                async with asyncio.timeout(SUBSCRIBE_SECONDS):
                    await stream.ready.wait()
            except TimeoutError:
                raise RedisConnectionError(f"could not subscribe to {channel}") from None
            yield TICK  # from here on nothing published is missed
            while not stream.closed:
                try:
                    async with asyncio.timeout(IDLE_SECONDS):
                        event = await stream.queue.get()
                except TimeoutError:
                    event = TICK  # lets the stream notice a client that went away
                if not stream.closed:
                    yield event
        finally:
            self._leave(channel, stream)

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        reader = self._reader
        if reader is not None and not reader.done() and reader.get_loop() is loop:
            return
        if reader is not None and reader.get_loop() is not loop:  # a test's earlier event loop
            self._streams.clear()
            self._lock = asyncio.Lock()
        self._pubsub = None
        self._requested.clear()
        self._confirmed.clear()
        self._reader = loop.create_task(self._read_forever())

    def _leave(self, channel: str, stream: _Stream) -> None:
        streams = self._streams.get(channel)
        if streams is None or stream not in streams:
            return
        streams.discard(stream)
        if not streams:
            del self._streams[channel]
            chore = asyncio.get_running_loop().create_task(self._sync(channel))
            self._chores.add(chore)
            chore.add_done_callback(self._chores.discard)

    async def _sync(self, channel: str) -> None:
        """Subscribes or unsubscribes the channel as its streams now need."""
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # (re)connecting: the reader subscribes what is needed then
            wanted = channel in self._streams
            if wanted == (channel in self._requested):
                return
            try:
                if wanted:
                    self._requested.add(channel)
                    await pubsub.subscribe(channel)
                else:
                    self._requested.discard(channel)
                    self._confirmed.discard(channel)
                    await pubsub.unsubscribe(channel)
            except Exception:  # the connection broke: the reader connects and subscribes again
                log.debug("pub/sub command failed", exc_info=True)

    async def _read_forever(self) -> None:
        """Holds the connection while there are streams; ends a second after the last one."""
        failures = 0
        while True:
            if not self._streams and self._reader is asyncio.current_task():
                self._reader = None  # all left while Redis was away
                return
            pubsub = self._redis.pubsub()
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call]
                async with self._lock:
                    self._pubsub = pubsub
                    self._confirmed.clear()
                    self._requested = set(self._streams)
                    if self._requested:
                        await pubsub.subscribe(*self._requested)
                if failures:
                    log.warning("event streams: connected to Redis again")
                failures = 0
                while True:
                    message = await pubsub.get_message(timeout=IDLE_SECONDS)
                    if message is not None:
                        self._handle(message)
                        await asyncio.sleep(0)  # the streams take it before the next is read
                    elif not self._streams and self._reader is asyncio.current_task():
                        self._reader = None  # no stream left: the next one starts a reader
                        return
            except asyncio.CancelledError:
                raise
            except Exception:
                if not failures:
                    log.warning("event streams: the Redis connection was lost", exc_info=True)
                failures += 1
            finally:
                if self._pubsub is pubsub:
                    self._pubsub = None
                    self._confirmed.clear()
                try:
                    await asyncio.shield(pubsub.aclose())
                except Exception:
                    log.debug("closing a broken pub/sub connection failed", exc_info=True)
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])

    def _handle(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "subscribe":
            self._confirmed.add(channel)
            for stream in list(self._streams.get(channel, ())):
                if stream.ready.is_set():  # subscribed again after a lost connection
                    self._offer(channel, stream, (RESYNC, {}))
                else:
                    stream.ready.set()
        elif kind == "message":
            try:
                payload = json.loads(message["data"])
                event: Event = (str(payload["event"]), dict(payload["data"]))
            except (ValueError, KeyError, TypeError):
                log.error("an event that is not ours was published", extra={"channel": channel})
                return
            for stream in list(self._streams.get(channel, ())):
                self._offer(channel, stream, event)

    def _offer(self, channel: str, stream: _Stream, event: Event) -> None:
        try:
            stream.queue.put_nowait(event)
        except asyncio.QueueFull:
            # It stopped reading: close it (its page reconnects and refreshes), free its queue.
            stream.closed = True
            stream.queue = asyncio.Queue(1)
            self.dropped += 1
            log.warning("an event stream fell behind and was closed", extra={"channel": channel})
            self._leave(channel, stream)
