"""A finished call leaves the line: in the one script that ends it when it was simply waiting,
as before when routing has it or its entry predates the line marker; a callback keeps its place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from api.phone import Phone
from routing import keys


async def _queued(phone: Callable[..., Phone]) -> Phone:
    caller = phone()
    await caller.dial()
    await caller.press("2")  # VOG RP
    turn = await caller.press("#")  # no application number
    assert turn.queue == "kcc-vog_rp"
    return caller


def _count_commands(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the Redis commands the app sends from now on."""
    redis = app.state.services.redis
    sent: list[str] = []
    execute = redis.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await execute(*args, **options)

    monkeypatch.setattr(redis, "execute_command", counted)
    return sent


async def test_a_waiting_caller_who_hangs_up_leaves_the_line_in_one_round_trip(
    app: FastAPI, phone: Callable[..., Phone], monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = await _queued(phone)
    queue = app.state.services.queue
    assert [e.call_sid for e in await queue.waiting()] == [caller.call_sid]
    sent = _count_commands(app, monkeypatch)

    assert (await caller.hang_up()).status_code == 200

    assert sent == ["EVALSHA"]
    monkeypatch.undo()
    assert await queue.waiting() == []
    assert await queue.get(caller.call_sid) is None


async def test_an_entry_from_before_the_line_marker_still_leaves_the_line(
    app: FastAPI, phone: Callable[..., Phone], redis_client: aioredis.Redis
) -> None:
    """Queued by the previous version during an upgrade: no marker, so the second way out."""
    caller = await _queued(phone)
    await redis_client.delete(keys.queue_line(caller.call_sid))

    await caller.hang_up()

    queue = app.state.services.queue
    assert await queue.waiting() == []
    assert await queue.get(caller.call_sid) is None
    assert await redis_client.zcard(keys.queue("vog_rp")) == 0


async def test_a_callback_for_a_call_whose_entry_has_gone_is_not_confirmed(
    app: FastAPI, phone: Callable[..., Phone], redis_client: aioredis.Redis
) -> None:
    """The entry vanished between reading it and keeping it (the call ended): nothing is
    recreated, and the caller is not told they will be called back."""
    caller = await _queued(phone)
    queue = app.state.services.queue
    entry = await queue.get(caller.call_sid)
    await redis_client.delete(keys.queue_entry(caller.call_sid))

    async def stale_read(call_sid: str) -> object:
        return entry

    queue.get = stale_read  # type: ignore[method-assign]
    assert await queue.ask_callback(caller.call_sid) is None
    assert await redis_client.exists(keys.queue_entry(caller.call_sid)) == 0
