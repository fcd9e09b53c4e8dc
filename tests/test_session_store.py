"""The session store's copy of the calls it committed: `end` answers what Redis held."""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis

from ivr.session import CallSession
from ivr.store import NEW_CALL, SessionStore
from routing.sealing import Sealer
from tests.conftest import SECRET_KEY

STARTED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def new_session(call_sid: str) -> CallSession:
    return CallSession(
        call_sid=call_sid,
        caller="+31612345678",
        flow="kcc",
        flow_version="v1",
        language="nl",
        started_at=STARTED,
        seq=1,
        node="menu",
    )


async def test_end_answers_the_session_this_instance_committed(
    redis_client: aioredis.Redis,
) -> None:
    store = SessionStore(redis_client, Sealer(SECRET_KEY))
    session = new_session("CA1")
    assert await store.commit(session, answered_seq=NEW_CALL, reply="<Response/>") is not None
    step = await store.load_for_step("CA1", 1)
    assert step is not None
    step.seq, step.path = 2, ["menu=1"]
    assert await store.commit(step, answered_seq=1, reply="<Response/>") is not None

    ended, _ = await store.end("CA1")

    assert ended is not None
    assert ended.model_dump() == step.model_dump()
    assert await store.load("CA1") is None  # forgotten


async def test_end_answers_what_another_instance_committed_since(
    redis_client: aioredis.Redis,
) -> None:
    """This instance's copy is stale once another instance moved the call on: `end` must
    answer Redis' session (the record is built from it), not the copy."""
    sealer = Sealer(SECRET_KEY)
    mine, other = SessionStore(redis_client, sealer), SessionStore(redis_client, sealer)
    assert await mine.commit(new_session("CA2"), answered_seq=NEW_CALL, reply="<Response/>")
    moved = await other.load_for_step("CA2", 1)
    assert moved is not None
    moved.seq, moved.path, moved.product = 2, ["menu=3"], "vog_np"
    assert await other.commit(moved, answered_seq=1, reply="<Response/>") is not None

    ended, _ = await mine.end("CA2")

    assert ended is not None
    assert ended.path == ["menu=3"] and ended.product == "vog_np" and ended.seq == 2


async def test_end_of_a_call_this_instance_never_saw(redis_client: aioredis.Redis) -> None:
    sealer = Sealer(SECRET_KEY)
    assert await SessionStore(redis_client, sealer).commit(
        new_session("CA3"), answered_seq=NEW_CALL, reply="<Response/>"
    )
    ended, _ = await SessionStore(redis_client, sealer).end("CA3")
    assert ended is not None and ended.caller == "+31612345678"
    assert (await SessionStore(redis_client, sealer).end("CA4"))[0] is None
