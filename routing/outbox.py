"""A Redis outbox in front of a database write: what is handed over is never lost because the
database was away for a while.

`push` puts an item (a JSON text) at the tail of a Redis list, in one round trip, and wakes the
writer (`push_step` is the same push as a step of a longer script, then `wake`); the writer, in
the background, takes batches from the head and writes them. A batch the database refused
stays in Redis and is tried again with back-off (1 s, doubling, up to a minute); the app's
timer (`drain`) and its start-up drain whatever waits, left by this or any instance.
Several instances: one drains at a time (a lock with a time to live), and the writes must be
idempotent, because a batch written by an instance that then lost its lock is written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import cast

from redis.asyncio import Redis

from routing.scripts import LuaScript, ScriptRunner, ScriptStep, as_int

log = logging.getLogger(__name__)

_PUSH = LuaScript.named("outbox_push")
_DONE = LuaScript.named("outbox_done")
_RELEASE = LuaScript.named("outbox_release")

# Writes a batch; answers the items that must wait and be tried again later (e.g. a change of
# a record that is not there yet).
WriteBatch = Callable[[list[str]], list[str]]
RunSync = Callable[[Callable[[], list[str]]], Awaitable[list[str]]]
FIRST_RETRY_SECONDS = 1.0
LAST_RETRY_SECONDS = 60.0


class Outbox:
    def __init__(
        self,
        redis: Redis,
        write: WriteBatch,
        run_sync: RunSync,
        *,
        key: str,
        lock_key: str,
        ttl_seconds: int,
        lock_ms: int,
        batch: int = 200,
        linger: float = 0.25,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._scripts = ScriptRunner(redis)
        self._write = write
        self._run_sync = run_sync
        self._key = key
        self._lock_key = lock_key
        self._ttl = ttl_seconds
        self._lock_ms = lock_ms
        self._batch = batch
        self._linger = linger
        self._monotonic = monotonic
        self._task: asyncio.Task[bool] | None = None
        self._retry_delay = 0.0  # 0: the last write went through
        self._not_before = 0.0  # no try before this (monotonic), after a failed write

    async def push(self, item: str) -> None:
        """Keep `item` until the database has it, and wake the writer."""
        await self._scripts.run_one(self.push_step(item))
        self.wake()

    def push_step(self, item: str) -> ScriptStep[int]:
        """`push` as a step of a longer script (routing/scripts.py); call `wake` once it ran."""
        return ScriptStep(_PUSH, keys=[self._key], args=[item, self._ttl], decode=as_int)

    async def waiting(self) -> int:
        return int(await self._redis.llen(self._key))

    async def drain(self) -> bool:
        """Write what waits (unless a failed write asked to wait a little longer). True when
        the outbox was emptied, False when something waits still (the database is away, another
        instance drains, or changes wait for their record). For the timer and the start-up."""
        if self._task is not None and not self._task.done():
            return await asyncio.shield(self._task)
        if self._monotonic() < self._not_before:
            return False
        self._task = asyncio.get_running_loop().create_task(self._drain())
        return await asyncio.shield(self._task)

    async def flush(self) -> bool:
        """Write everything pushed so far now, back-off or not (tests, shutting down)."""
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        self._not_before = 0.0
        return await self.drain()

    def drain_soon(self) -> None:
        """Start writing what waits, unless a write is under way or a back-off holds; without
        waiting for it: a slow database must not hold up the routing tick that calls this."""
        self._start(linger=0.0)

    def wake(self) -> None:
        """Something was pushed: write it soon, with a few more gathered meanwhile."""
        self._start(linger=self._linger)

    def _start(self, *, linger: float) -> None:
        idle = self._task is None or self._task.done()
        if idle and self._monotonic() >= self._not_before:
            self._task = asyncio.get_running_loop().create_task(self._drain(linger))

    async def _drain(self, linger: float = 0.0) -> bool:
        if linger > 0:
            await asyncio.sleep(linger)  # one write of many items costs little more than one
        try:
            return await self._drain_now()
        except Exception:  # Redis away: the items are where they were; the timer tries again
            log.exception("could not drain the outbox")
            return False

    async def _drain_now(self) -> bool:
        while True:
            # OpenSSL's generator: os.urandom (behind `secrets`) lets go of the GIL on the loop
            # (docs/architecture.md, "Work on the event loop keeps the GIL").
            token = ssl.RAND_bytes(8).hex()
            if not await self._redis.set(self._lock_key, token, nx=True, px=self._lock_ms):
                return False  # another instance drains
            items = cast(list[str], await self._redis.lrange(self._key, 0, self._batch - 1))
            if not items:
                await self._release(token)
                return True
            try:
                later = await self._run_sync(partial(self._write, items))
            except Exception:
                await self._release(token)
                self._back_off()
                log.warning(
                    "could not write the outbox's batch; it waits in Redis",
                    exc_info=True,
                    extra={"rows": len(items), "retry_seconds": self._retry_delay},
                )
                return False
            self._retry_delay, self._not_before = 0.0, 0.0
            await self._scripts.run_one(
                ScriptStep(
                    _DONE,
                    keys=[self._key, self._lock_key],
                    args=[token, len(items), self._ttl, *later],
                    decode=as_int,
                )
            )
            if later and len(later) == len(items):
                return False  # only changes waiting for their records: the timer comes back

    async def _release(self, token: str) -> None:
        step = ScriptStep(_RELEASE, keys=[self._lock_key], args=[token], decode=as_int)
        with contextlib.suppress(Exception):
            await self._scripts.run_one(step)

    def _back_off(self) -> None:
        self._retry_delay = min(LAST_RETRY_SECONDS, max(FIRST_RETRY_SECONDS, self._retry_delay * 2))
        self._not_before = self._monotonic() + self._retry_delay
