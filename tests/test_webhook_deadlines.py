"""Every webhook has a time budget (api/webhook_deadlines.py): a caller whose step hangs hears
the apology long before Twilio gives up (15 s), and nothing else is cancelled by it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest
from fastapi import FastAPI

from api.cli.phone import Phone
from api.webhooks.deadlines import Deadlines


async def _forever() -> str:
    await asyncio.Event().wait()
    return "never"


async def test_work_over_its_budget_is_stopped_with_a_timeout() -> None:
    deadlines = Deadlines(0.2, sweep_every=0.05)
    started = time.monotonic()
    async with asyncio.timeout(5):  # the test's own limit: a broken budget fails, not hangs
        with pytest.raises(TimeoutError, match="budget"):
            await deadlines.run(_forever())
    assert 0.2 <= time.monotonic() - started < 1.0
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0  # the task is whole again
    assert await deadlines.run(asyncio.sleep(0, "next")) == "next"


async def test_work_within_its_budget_is_left_alone() -> None:
    deadlines = Deadlines(0.3, sweep_every=0.05)
    assert await deadlines.run(asyncio.sleep(0.1, "done")) == "done"
    await asyncio.sleep(0.4)  # long past the budget: nothing left to cancel
    assert await deadlines.run(asyncio.sleep(0.1, "again")) == "again"


async def test_a_cancellation_from_elsewhere_is_not_taken_for_a_timeout() -> None:
    deadlines = Deadlines(5, sweep_every=0.05)
    task = asyncio.create_task(deadlines.run(_forever()))
    await asyncio.sleep(0.1)
    task.cancel()  # as at shutdown
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_swallowed_earlier_does_not_hide_the_timeout() -> None:
    """asyncio.timeout counts from the task's cancel count on entry; so must the sweep."""
    current = asyncio.current_task()
    assert current is not None
    current.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0)  # delivered and swallowed, without uncancel: the count stays 1
    deadlines = Deadlines(0.1, sweep_every=0.02)
    async with asyncio.timeout(5):
        with pytest.raises(TimeoutError, match="budget"):
            await deadlines.run(_forever())
    current.uncancel()


async def test_a_budget_inside_a_budget_keeps_the_outer_one() -> None:
    deadlines = Deadlines(0.2, sweep_every=0.02)

    async def inner() -> str:
        return await deadlines.run(asyncio.sleep(0.05, "inner"))

    assert await deadlines.run(inner()) == "inner"
    async with asyncio.timeout(5):
        with pytest.raises(TimeoutError, match="budget"):
            await deadlines.run(deadlines.run(_forever()))


def test_the_budget_holds_on_a_new_event_loop_after_the_old_one_was_dropped() -> None:
    """A loop closed with the sweep still pending (not cancelled) must not leave the next loop
    without one."""
    deadlines = Deadlines(0.1, sweep_every=0.02)
    first = asyncio.new_event_loop()
    first.run_until_complete(deadlines.run(asyncio.sleep(0)))  # the sweep starts, still pending
    first.close()

    async def overrun() -> None:
        async with asyncio.timeout(5):
            with pytest.raises(TimeoutError, match="budget"):
                await deadlines.run(_forever())

    second = asyncio.new_event_loop()
    try:
        second.run_until_complete(overrun())
    finally:
        second.close()


async def test_a_hanging_step_answers_the_apology_within_the_budget(
    app: FastAPI, phone: Callable[..., Phone], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = app.state.services
    services.webhook_deadlines = Deadlines(0.3, sweep_every=0.05)
    caller = phone()
    await caller.dial()

    async def hanging(*args: object, **kwargs: object) -> str:
        return await _forever()

    monkeypatch.setattr(services.calls, "step", hanging)
    started = time.monotonic()
    async with asyncio.timeout(5):  # the test's own limit
        turn = await caller.press("1")
    assert time.monotonic() - started < 2.0
    assert turn.heard[0].text.startswith("Excuses, er ging iets mis.")
    assert turn.queue == "kcc-general"
