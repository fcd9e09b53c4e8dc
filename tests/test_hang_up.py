"""A finished call leaves the line: in the one script that ends it when it was simply waiting,
as before when routing has it or its entry predates the line marker; a callback keeps its place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from api.cli.phone import Phone
from routing import keys
from routing.sealing import Sealer
from tests.conftest import SECRET_KEY


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
    first = await _queued(phone)
    await first.hang_up()  # Redis has the script from here on (else: SCRIPT LOAD, once)
    caller = await _queued(phone)
    queue = app.state.services.queue
    assert [e.call_sid for e in await queue.waiting()] == [caller.call_sid]
    sent = _count_commands(app, monkeypatch)

    assert (await caller.hang_up()).status_code == 200

    # Leaving the line is the one script; then one more hands the call's record to the outbox
    # and counts it abandoned (for /metrics and today's wallboard): two commands in all.
    assert sent == ["EVALSHA", "EVALSHA"]
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


async def test_a_callback_asked_for_on_an_instance_from_before_the_marker_keeps_its_place(
    app: FastAPI, phone: Callable[..., Phone], redis_client: aioredis.Redis
) -> None:
    """During a rolling upgrade the callback choice may reach an instance of the previous
    version: it keeps the entry (callback TTL) but knows nothing of the line marker."""
    caller = await _queued(phone)
    queue = app.state.services.queue
    entry = await queue.get(caller.call_sid)
    assert entry is not None
    sealed = Sealer(SECRET_KEY).seal(entry.model_copy(update={"callback": True}).model_dump_json())
    # What the previous version's ask_callback sent, command for command.
    await redis_client.set(keys.queue_entry(caller.call_sid), sealed, ex=keys.CALLBACK_TTL, xx=True)
    await redis_client.expire(keys.queue("vog_rp"), keys.CALLBACK_TTL)

    await caller.hang_up()

    [waiting] = await queue.waiting()
    assert waiting.call_sid == caller.call_sid and waiting.callback


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
