"""Rows written to the database in the background, so no webhook or routing decision waits for
a database write."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


RunSync = Callable[[Callable[[], None]], Awaitable[None]]  # runs blocking work in a thread


class BackgroundWriter(Generic[T]):
    """Writes rows in the background, in batches, in submission order, one writer per process.

    A webhook or a routing decision hands its row over and goes on at once: a database write
    (and a SQLite write lock) never sits on the caller's path. The writer gathers rows for
    `linger` seconds before it writes: one write of many rows costs little more than a write of
    one, and the writer's thread shares the interpreter with the webhooks. `flush` writes at once.
    """

    def __init__(
        self,
        write: Callable[[list[T]], None],
        run_sync: RunSync,
        *,
        batch: int = 200,
        linger: float = 0.25,
    ) -> None:
        self._write = write
        self._run_sync = run_sync
        self._batch = batch
        self._linger = linger
        self._pending: list[T] = []
        self._task: asyncio.Task[None] | None = None
        self._hurry = False  # flush wants everything written now
        self._now: asyncio.Event | None = None  # wakes a writer that is gathering rows

    def submit(self, record: T) -> None:
        self._pending.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        """Wait until everything submitted so far is written."""
        while self._task is not None and not self._task.done():
            self._hurry = True
            if self._now is not None:
                self._now.set()
            await self._task

    async def _drain(self) -> None:
        if self._linger > 0 and not self._hurry:
            self._now = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), self._linger)
        while self._pending:
            batch, self._pending = self._pending[: self._batch], self._pending[self._batch :]
            try:
                await self._run_sync(partial(self._write, batch))
            except Exception:  # the database is away: reports lose these rows, callers nothing
                log.exception("could not write report rows", extra={"rows": len(batch)})
        self._now = None
        self._hurry = False
