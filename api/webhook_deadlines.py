"""A time budget for every webhook, kept by one periodic sweep instead of a timer per webhook.

Twilio waits 15 s for an answer; a webhook still working after its budget is cancelled so the
caller hears the apology instead of Twilio's error. `asyncio.timeout` does this with a timer
armed and disarmed per request, which cost a few per cent of a webhook's CPU; here a webhook
only enters and leaves a dict, and one task looks at the dict a few times a second. A budget is
therefore kept to within `sweep_every` seconds, which is all it needs to be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")
# Twilio waits 15 s for an answer; stop well before, so the caller hears our apology instead.
WEBHOOK_BUDGET_SECONDS = 8.0
SWEEP_SECONDS = 0.25


class Deadlines:
    def __init__(
        self, budget: float = WEBHOOK_BUDGET_SECONDS, *, sweep_every: float = SWEEP_SECONDS
    ) -> None:
        self.budget = budget
        self._sweep_every = sweep_every
        self._running: dict[asyncio.Task[Any], float] = {}  # task -> deadline (loop time)
        self._expired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def run(self, work: Awaitable[T]) -> T:
        """Await `work` in the current task; TimeoutError when it runs over the budget."""
        task = asyncio.current_task()
        assert task is not None, "a webhook always runs in a task"
        loop = task.get_loop()
        self._running[task] = loop.time() + self.budget
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep())
        try:
            return await work
        except asyncio.CancelledError:
            # Ours alone: a cancellation from elsewhere (shutdown) must still go through.
            if task in self._expired and task.cancelling() == 1:
                raise TimeoutError(f"over the webhook budget of {self.budget} s") from None
            raise
        finally:
            del self._running[task]
            if task in self._expired:
                self._expired.discard(task)
                task.uncancel()

    async def _sweep(self) -> None:
        """Cancel what is over its deadline; stops when nothing is running (`run` restarts it),
        so no task outlives the webhooks."""
        loop = asyncio.get_running_loop()
        while self._running:
            await asyncio.sleep(self._sweep_every)
            now = loop.time()
            for task, deadline in list(self._running.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()
