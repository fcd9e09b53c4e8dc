"""A redis-py client that sends plain commands over one pipelined connection.

redis-py's asyncio client takes a connection from its pool for every command, wraps it in retry,
timeout and telemetry machinery and parses the reply in Python: about 40 µs of the webhook's own
CPU per command, more than a third of a webhook's time on one worker. Redis answers the commands
of one connection in the order they were sent, so many commands can be in flight on a single
connection at once, each reply going to the oldest command still waiting. `PipelinedRedis` does
that, parsing with hiredis (C), and keeps everything else of redis-py: the API, the reply
callbacks, the exceptions (`NoScriptError`, so registered scripts reload themselves), and the
pool, which pipelines, pub/sub and anything unusual still use.

No command is retried after a lost connection: a Lua script may already have run. The caller
gets redis-py's `ConnectionError` (`TimeoutError` when Redis stops answering), and the next
command connects again.

Behind Sentinel (a client of `Sentinel.master_for`, whose pool is a `SentinelConnectionPool`) the
line asks the Sentinels for the master's address each time it connects, as redis-py's own
connections of that pool do; a master demoted to a replica answers writes with READONLY, which
closes the line (a `ConnectionError` for the command) so that the next command finds the new one.
A master that lives on after a failover keeps taking writes until the Sentinel demotes it (up to
10 s later), so `follow_master`, called every half second, asks the Sentinels and leaves the old
master as soon as they name another.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from routing.resp import pack_command, parse_error

NEVER_DECODE = "NEVER_DECODE"
EMPTY_RESPONSE = "EMPTY_RESPONSE"
# Commands that hold their connection or change its state: never on the shared line.
_POOL_ONLY = frozenset(
    {
        "BLPOP",
        "BRPOP",
        "BLMOVE",
        "BRPOPLPUSH",
        "BZPOPMIN",
        "BZPOPMAX",
        "BLMPOP",
        "BZMPOP",
        "XREAD",
        "XREADGROUP",
        "WAIT",
        "WAITAOF",
        "MULTI",
        "EXEC",
        "WATCH",
        "UNWATCH",
        "DISCARD",
        "SELECT",
        "AUTH",
        "HELLO",
        "RESET",
        "QUIT",
        "MONITOR",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "CLIENT",
        "DEBUG",
        "SHUTDOWN",
        "UNSUBSCRIBE",  # these answer once per channel
        "PUNSUBSCRIBE",
        "SUNSUBSCRIBE",
        "SYNC",
        "PSYNC",
        "HIMPORT",  # redis-py 8's import sessions are per-connection state
    }
)


class _Line(asyncio.Protocol):
    """One TCP connection; replies are handed to waiting commands in the order sent."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        encoding: str | None,
        errors: str,
        timeout: float | None,
    ):
        self.loop = loop
        self._reader = (
            hiredis.Reader(encoding=encoding, errors=errors) if encoding else hiredis.Reader()
        )
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._outgoing: list[bytes] = []  # commands of this turn of the loop, sent together
        self.closed = False
        self.address: tuple[str, int] | None = None  # the server's, once connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self._timeout is not None:
            self._watchdog = self.loop.call_later(self._timeout / 4, self._check_deadline)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while True:
            try:
                reply = reader.gets()
            except UnicodeDecodeError as error:  # hiredis consumed the reply: only its reader fails
                reply = error
            except Exception as error:  # not RESP: the line is out of step
                self._fail(RedisConnectionError(f"unreadable reply from Redis: {error}"))
                return
            if reply is False:
                return
            if not waiting:  # Redis said something nobody asked for: the line is out of step
                self._fail(RedisConnectionError("Redis sent a reply nobody was waiting for"))
                return
            future, _ = waiting.popleft()
            if future.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(reply, UnicodeDecodeError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"Connection to Redis lost: {exc or 'closed by server'}"))

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.closed or self._transport is None:
            raise RedisConnectionError("Connection to Redis is closed")
        future = self.loop.create_future()
        deadline = time.monotonic() + self._timeout if self._timeout is not None else 0.0
        self._waiting.append((future, deadline))
        if not self._outgoing:
            self.loop.call_soon(self._write)
        self._outgoing.append(packed)
        return future

    def _write(self) -> None:
        # One write (a system call) for all commands sent in a turn of the event loop, however
        # many webhooks sent them: with dozens of calls in flight that is most of them.
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        if self._transport is not None and not self.closed:
            self._transport.write(data)

    def close(self) -> None:
        self._fail(RedisConnectionError("Connection to Redis closed by the client"))

    def _check_deadline(self) -> None:
        # The oldest command is first in line: if it is late, every later one is too.
        if self._waiting and self._waiting[0][1] < time.monotonic():
            self._fail(RedisTimeoutError("Timeout reading from Redis"))
            return
        if not self.closed and self._timeout is not None:
            self._watchdog = self.loop.call_later(self._timeout / 4, self._check_deadline)

    def _fail(self, error: Exception) -> None:
        if self.closed:
            return
        self.closed = True
        self._outgoing.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._transport is not None:
            self._transport.abort()
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)


class PipelinedRedis(Redis):
    """redis.asyncio.Redis whose plain commands share one pipelined connection.

    Use with RESP2 (`protocol=2`): the reply callbacks are chosen for the protocol the client was
    built with, and the line speaks RESP2. A pool using anything but plain TCP (a Unix socket,
    TLS) is used as redis-py would.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pool = self.connection_pool
        settings = pool.connection_kwargs
        self._sentinel = isinstance(pool, SentinelConnectionPool) and pool.is_master
        plain = pool.connection_class is (
            SentinelManagedConnection if self._sentinel else Connection
        )
        self._pipelined = plain and str(settings.get("protocol", 2)) in {"2", "None"}
        self._line: _Line | None = None
        self._connecting: asyncio.Future[_Line] | None = None
        self._closes = 0  # aclose() calls: a connect that finishes after one closes its line

    async def execute_command(self, *args: EncodableT, **options: Any) -> Any:
        name = str(args[0]).upper()
        if not self._pipelined or name.split()[0] in _POOL_ONLY or NEVER_DECODE in options:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        line = self._line
        if line is None or line.closed or line.loop is not asyncio.get_running_loop():
            if line is not None and not line.closed and not line.loop.is_closed():
                line.close()  # made in another event loop (tests); it cannot serve this one
            line = await self._connect()
        reply = await line.send(pack_command(args))
        if isinstance(reply, hiredis.ReplyError):
            error = parse_error(str(reply))
            if self._sentinel and isinstance(error, ReadOnlyError):
                # The master we are connected to was demoted (a failover): find the new one.
                line.close()
                raise RedisConnectionError("the Redis master became a replica") from error
            if EMPTY_RESPONSE in options and isinstance(error, ResponseError):
                return options[EMPTY_RESPONSE]
            raise error
        options.pop(EMPTY_RESPONSE, None)
        options.pop("keys", None)
        callback = self.response_callbacks.get(name)
        if callback is None:
            return reply
        result = callback(reply, **options)
        return await result if inspect.isawaitable(result) else result

    @property
    def follows_sentinel(self) -> bool:
        return self._sentinel

    async def follow_master(self) -> bool:
        """Behind Sentinel: when the Sentinels name another master, close every connection to the
        old one (the shared line, the pool's, pub/sub's: those reconnect and subscribe again),
        so that nothing more is written to a master that lost its place. True when it moved."""
        if not self._sentinel:
            return False
        pool = cast(SentinelConnectionPool, self.connection_pool)
        known = pool.master_address
        address = await self._master_address()  # drops the pool's idle connections if it moved
        line = self._line
        moved = known is not None and tuple(known) != address
        if line is not None and not line.closed and line.address != address:
            line.close()
            moved = True
        if moved:
            await pool.disconnect(inuse_connections=True)
        return moved

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        self._closes += 1
        if self._line is not None:
            self._line.close()
            self._line = None
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if self._sentinel and self.auto_close_connection_pool:
            # `master_for` made the pool, and the Sentinel clients, for this client alone.
            await cast(SentinelConnectionPool, pool).sentinel_manager.aclose()

    async def _connect(self) -> _Line:
        """The shared line, connecting it (once, however many commands are waiting for it)."""
        loop = asyncio.get_running_loop()
        pending = self._connecting
        if pending is not None and pending.get_loop() is loop and not pending.done():
            return await asyncio.shield(pending)
        self._connecting = loop.create_future()
        closes = self._closes
        try:
            line = await self._open(loop)
            if self._closes != closes:
                line.close()
                raise RedisConnectionError("the Redis client was closed while connecting")
        except BaseException as error:
            if isinstance(error, asyncio.CancelledError):  # only this caller was cancelled
                error = RedisConnectionError("connecting to Redis was interrupted")
            self._connecting.set_exception(error)
            self._connecting.exception()  # retrieved: waiters re-raise it themselves
            self._connecting = None
            raise
        self._line = line
        self._connecting.set_result(line)
        self._connecting = None
        return line

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Line:
        settings = self.connection_pool.connection_kwargs
        decode = bool(settings.get("decode_responses", False))
        line = _Line(
            loop,
            encoding=settings.get("encoding", "utf-8") if decode else None,
            errors=settings.get("encoding_errors", "strict"),
            timeout=settings.get("socket_timeout"),
        )
        if self._sentinel:  # whichever server the Sentinels name master now
            host, port = await self._master_address()
        else:
            host, port = settings.get("host", "localhost"), int(settings.get("port", 6379))
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the connection completes.
            async with asyncio.timeout(settings.get("socket_connect_timeout")):
                await loop.create_connection(lambda: line, host, port)
        except (OSError, TimeoutError) as error:
            raise RedisConnectionError(
                f"Error connecting to Redis at {host}:{port}: {error}"
            ) from None
        line.address = (host, port)
        try:
            await self._set_up(line, settings)
        except BaseException:  # refused, or the caller was cancelled: no half-made line is left
            line.close()
            raise
        return line

    async def _master_address(self) -> tuple[str, int]:
        """Raises redis-py's MasterNotFoundError (a ConnectionError) when no Sentinel names one."""
        pool = cast(SentinelConnectionPool, self.connection_pool)
        host, port = await pool.get_master_address()  # type: ignore[no-untyped-call]
        return str(host), int(port)

    async def _set_up(self, line: _Line, settings: dict[str, Any]) -> None:
        """AUTH, SELECT and CLIENT SETNAME, as redis-py's connections do."""
        setup: list[tuple[EncodableT, ...]] = []
        password, username = settings.get("password"), settings.get("username")
        if password:
            setup.append(("AUTH", username, password) if username else ("AUTH", password))
        if int(settings.get("db", 0) or 0):
            setup.append(("SELECT", int(settings["db"])))
        if settings.get("client_name"):
            setup.append(("CLIENT", "SETNAME", settings["client_name"]))
        for command in setup:
            reply = await line.send(pack_command(command))
            if isinstance(reply, hiredis.ReplyError):
                raise parse_error(str(reply))
