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
        if task in self._running:  # already under a budget: that one applies
            return await work
        loop = task.get_loop()
        self._running[task] = loop.time() + self.budget
        sweeper = self._sweeper
        if sweeper is None or sweeper.done() or sweeper.get_loop() is not loop:
            self._sweeper = loop.create_task(self._sweep())
        cancels_before = task.cancelling()  # a cancel swallowed earlier must not count as ours
        try:
            return await work
        except asyncio.CancelledError as cancelled:
            # Ours alone: a cancellation from elsewhere (shutdown) must still go through.
            if task in self._expired and task.cancelling() == cancels_before + 1:
                raise TimeoutError(f"over the webhook budget of {self.budget} s") from cancelled
            raise
        finally:
            del self._running[task]
            if task in self._expired:
                self._expired.discard(task)
                task.uncancel()

    def close(self) -> None:
        """Stop the sweep (the app shuts down)."""
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def _sweep(self) -> None:
        """Cancel what is over its deadline; stops when nothing is running (`run` restarts it),
        so no task outlives the webhooks."""
        loop = asyncio.get_running_loop()
        while self._running:
            await asyncio.sleep(self._sweep_every)
            now = loop.time()
            for task, deadline in list(self._running.items()):
                # Only this loop's tasks: a task may be cancelled from its own loop's thread only.
                if deadline <= now and task not in self._expired and task.get_loop() is loop:
                    self._expired.add(task)
                    task.cancel()
