"""Issue 14, faults: Redis restarts empty mid-day. The waiting callers are found again (Twilio's
Queue Members over REST, and the context their waitUrl carries) in their order with their
context; the advisers' states come back from the database; a caller in the menu is apologised
to and queued, never Twilio's "application error". What only Redis knew is kept in the database
too and comes back: the callbacks asked and not yet made (in their place, with their context)
and the identity lock-outs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import Engine, event

from api.cli.phone import Phone, parse_twiml
from api.settings import DEFAULT_FLOW
from routing import keys
from routing.clock import FixedClock
from routing.recovery import Recovered
from routing.sealing import Pseudonymizer
from tests.conftest import AUTH_TOKEN, PUBLIC_URL, SECRET_KEY
from tests.support.applications import app_with_demo_applications
from tests.support.routing_calls import ANN, BOB, set_status
from tests.support.staff import SANNE, add_staff, signed_in
from tests.support.twilio_stub import TwilioStub

NUMBER, BORN = "1234567", "03111985"  # a demo application and its date of birth
ENQUEUED = datetime(2026, 12, 1, 8, 50, tzinfo=UTC)  # Twilio's date_enqueued of the first


@pytest.fixture
async def app(make_app: Callable[..., FastAPI], tmp_path: Path) -> FastAPI:
    """The flow with a priority for verified callers about their VOG's status, the demo
    applications, Ann (VOG) and Bob (GVA)."""
    flow = Path(DEFAULT_FLOW).read_text()
    marker = "  queue_vog_np_status:\n    kind: queue\n"
    assert marker in flow
    path = tmp_path / "kcc.yaml"
    path.write_text(flow.replace(marker, marker + "    priority: 5\n"))
    built = app_with_demo_applications(lambda **o: make_app(flow=str(path), **o), SECRET_KEY)
    add_staff(built.state.services.db_engine, ANN, BOB)
    return built


async def queued(caller: Phone, stub: TwilioStub, keys_pressed: list[str], at: int) -> Phone:
    """Dial, press the keys, and wait in Twilio's queue (enqueued `at` seconds after the first)."""
    await caller.dial()
    for pressed in keys_pressed:
        turn = await caller.press(pressed)
    assert turn.queue is not None
    stub.enqueue(caller.call_sid, turn.queue, at=ENQUEUED + timedelta(seconds=at))
    return caller


def carried(caller: Phone) -> str:
    assert caller.last is not None and caller.last.wait_url is not None
    [context] = parse_qs(urlsplit(caller.last.wait_url).query)["ctx"]
    return context


async def test_waiting_callers_and_advisers_come_back_in_order_after_redis_restarts_empty(
    app: FastAPI,
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    redis_client: aioredis.Redis,
    twilio_stub: TwilioStub,
) -> None:
    services = app.state.services
    ann, bob = await signed_in(http, ANN), await signed_in(http, BOB)
    await set_status(http, ann, "available")
    await set_status(http, ann, "break")
    await set_status(http, bob, "available")
    # Two VOG RP callers, then a verified VOG NP caller with priority: no adviser for them.
    first = await queued(phone(), twilio_stub, ["2", "#"], at=0)
    second = await queued(phone(), twilio_stub, ["2", "#"], at=1)
    verified = await queued(phone(), twilio_stub, ["1", "1", f"{NUMBER}#", BORN, "1"], at=2)
    before = await services.queue.waiting()
    assert [e.call_sid for e in before] == [verified.call_sid, first.call_sid, second.call_sid]
    board = services.router.board
    assert (await board.working("gva"), await board.working("vog_rp")) == (1, 0)  # Ann on a break
    assert (before[0].priority, before[0].verification) == (5, "verified")
    # The waitUrl carries the entry sealed: no date of birth in it, and no number in clear.
    opened = services.queue.open_carried(carried(verified), verified.call_sid)
    assert opened == before[0] and "1985" not in opened.model_dump_json()
    assert NUMBER not in carried(verified) and BORN not in carried(verified)

    await redis_client.flushdb()  # Redis restarted empty

    # A GVA caller comes in before anything noticed: Bob's state is gone, so nobody is offered.
    late = await queued(phone(), twilio_stub, ["3", "#"], at=10)
    assert twilio_stub.updates_for(late.call_sid) == []
    assert await board.working("gva") == 0  # counted while nobody is known
    recovered = await services.recovery.check()  # the next tick notices, once
    assert isinstance(recovered, Recovered)
    assert recovered.callers == 4 and recovered.advisers == 2 and recovered.made_safe == []
    assert (recovered.lines.moved, recovered.lines.reserved, recovered.lines.behind) == (1, 3, 0)
    assert await services.recovery.check() is None  # the marker is back: no second recovery
    assert await services.recovery.recover() is None  # and the lock keeps a second one out
    assert len(await services.queue.waiting()) == 1
    # The count of advisers working, for the expected wait, is theirs again: Bob on GVA.
    assert (await board.working("gva"), await board.working("vog_rp")) == (1, 0)

    # Their next waitUrl fetches bring the three back, in any order, each with its context.
    for caller in (second, verified, first):
        assert "U bent nummer" in (await caller.hold()).text
    after = await services.queue.waiting()
    assert [e.call_sid for e in after] == [
        verified.call_sid,
        first.call_sid,
        second.call_sid,
        late.call_sid,
    ]
    assert after[:3] == before  # same product, theme, priority, verification, wait start
    session = await services.calls.store.load(verified.call_sid)  # for the call's record
    assert session is not None and session.verification == "verified"
    assert (session.product, session.queued_at) == ("vog_np", before[0].queued_at)
    assert await redis_client.zrank(keys.queue("vog_rp"), second.call_sid) == 1

    # Bob was available and is again: the next routing tick gives him the GVA caller.
    supervisor = await signed_in(http, SANNE)
    states = {
        a["name"]: a["status"] for a in (await http.get("/api/advisers", headers=supervisor)).json()
    }
    assert states == {"ann": "break", "bob": "available"}
    await services.router.tick()
    [to_bob] = twilio_stub.updates_for(late.call_sid)
    assert to_bob.form["Url"].startswith(f"{PUBLIC_URL}/twilio/connect?offer=")
    # Ann comes back from her break: she is offered the first caller in line.
    await set_status(http, ann, "available")
    assert len(twilio_stub.updates_for(verified.call_sid)) == 1
    assert twilio_stub.updates_for(first.call_sid) == []
    me = (await http.get("/api/advisers/me", headers=ann)).json()
    assert me["status"] == "offered" and me["call"]["application_number"] == NUMBER


async def test_an_adviser_with_a_call_at_the_loss_gets_a_break_not_a_second_call(
    app: FastAPI,
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    redis_client: aioredis.Redis,
    twilio_stub: TwilioStub,
) -> None:
    services = app.state.services
    bob = await signed_in(http, BOB)
    await set_status(http, bob, "available")
    talking = await queued(phone(), twilio_stub, ["3", "#"], at=0)
    await talking.post(f"{PUBLIC_URL}/twilio/offer-answered?offer=1", {"CallStatus": "in-progress"})
    assert (await http.get("/api/advisers/me", headers=bob)).json()["status"] == "on_call"
    await redis_client.flushdb()
    waiting = await queued(phone(), twilio_stub, ["3", "#"], at=5)
    recovered = await services.recovery.check()
    assert recovered is not None and recovered.made_safe == ["bob"]
    await services.router.tick()
    assert (await http.get("/api/advisers/me", headers=bob)).json()["status"] == "break"
    assert twilio_stub.updates_for(waiting.call_sid) == []  # nothing rings during his call
    await services.state_log.flush()
    with services.db_engine.connect() as db:
        rows = db.exec_driver_sql(
            "select state from adviser_state_changes where adviser = 'bob' order by id"
        ).all()
    assert [r[0] for r in rows] == ["available", "offered", "on_call", "break"]


async def test_a_redis_of_the_release_before_is_taken_as_it_is_not_recovered(
    app: FastAPI,
    phone: Callable[..., Phone],
    redis_client: aioredis.Redis,
    twilio_stub: TwilioStub,
) -> None:
    """The first start of this release finds the state but no marker (the release before wrote
    none): recovering then would reorder the live lines. An empty Redis is still recovered."""
    services = app.state.services
    first = await queued(phone(), twilio_stub, ["3", "#"], at=0)
    second = await queued(phone(), twilio_stub, ["3", "#"], at=5)
    line = [entry.call_sid for entry in await services.queue.waiting()]
    assert line == [first.call_sid, second.call_sid]
    await redis_client.delete(keys.redis_marker())

    assert await services.recovery.adopt() is True
    assert await services.recovery.check() is None
    assert [entry.call_sid for entry in await services.queue.waiting()] == line
    assert not [r for r in twilio_stub.requests if "/Queues" in r.path]  # Twilio not asked

    await redis_client.flushdb()
    assert await services.recovery.adopt() is False
    recovered = await services.recovery.check()
    assert recovered is not None and recovered.callers == 2


async def test_a_caller_in_the_menu_goes_on_where_the_instance_still_knows_the_call(
    app: FastAPI, phone: Callable[..., Phone], redis_client: aioredis.Redis
) -> None:
    caller = phone()
    await caller.dial()
    await redis_client.flushdb()
    turn = await caller.press("2")  # this instance answered the last step: it kept the call
    assert "aanvraagnummer" in turn.text and turn.queue is None
    turn = await caller.press("#")
    assert turn.queue == "kcc-vog_rp"
    [entry] = await app.state.services.queue.waiting()
    assert (entry.call_sid, entry.product) == (caller.call_sid, "vog_rp")


async def test_a_caller_in_the_menu_another_instance_knew_is_apologised_to_and_queued(
    make_app: Callable[..., FastAPI],
    app: FastAPI,
    phone: Callable[..., Phone],
    redis_client: aioredis.Redis,
) -> None:
    caller = phone()
    await caller.dial()
    await redis_client.flushdb()
    other = make_app()  # a second instance on the same Redis, which never saw the call
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=other), base_url=PUBLIC_URL
    ) as http:
        there = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, call_sid=caller.call_sid)
        there.last = caller.last
        response = await there.post(there.last.gather_url or "", {"Digits": "2"})  # type: ignore[union-attr]
        assert response.status_code == 200 and "application error" not in response.text.lower()
        turn = there.last = parse_twiml(response.text)
        assert turn.queue == "kcc-general" and not turn.hung_up
        assert "Excuses" in turn.text
        await there.hold()
    [entry] = await app.state.services.queue.waiting()
    assert (entry.call_sid, entry.product, entry.verification) == (
        caller.call_sid,
        "general",
        "unverified",
    )


# -- what only Redis knew: callbacks asked, identity lock-outs ---------------------------------


async def queued_now(
    caller: Phone, stub: TwilioStub, clock: FixedClock, keys_pressed: list[str]
) -> Phone:
    """Dial a second after the last caller, press the keys, and wait in Twilio's queue (its
    date_enqueued the app's time, as with the real Twilio)."""
    clock.set(clock.now() + timedelta(seconds=1))
    await caller.dial()
    for pressed in keys_pressed:
        turn = await caller.press(pressed)
    assert turn.queue is not None
    stub.enqueue(caller.call_sid, turn.queue, at=clock.now())
    return caller


async def asked_a_callback(caller: Phone, stub: TwilioStub) -> None:
    """After the long wait: 1 at the callback offer, out of Twilio's queue, hung up."""
    assert "Toets dan 1" in (await caller.hold()).text
    chosen = await caller.post(f"{PUBLIC_URL}/twilio/callback-choice?lang=nl", {"Digits": "1"})
    assert "Wij bellen u terug" in chosen.text
    stub.dequeue(caller.call_sid)
    await caller.post(f"{PUBLIC_URL}/twilio/queue-result?lang=nl", {"QueueResult": "leave"})
    await caller.hang_up()


def kept_callbacks(engine: Engine) -> list[tuple[str, str | None, bool]]:
    """The database's callbacks: call, sealed entry, settled."""
    with engine.connect() as db:
        rows = db.exec_driver_sql(
            "select call_sid, entry, settled_at from pending_callbacks order by queued_at"
        ).all()
    return [(row[0], row[1], row[2] is not None) for row in rows]


async def test_callers_who_chose_a_callback_come_back_in_their_place_after_redis_restarts_empty(
    app: FastAPI,
    phone: Callable[..., Phone],
    redis_client: aioredis.Redis,
    twilio_stub: TwilioStub,
    clock: FixedClock,
) -> None:
    services = app.state.services
    first = await queued_now(phone(), twilio_stub, clock, ["2", "#"])
    asked = await queued_now(phone(caller="+31612345678"), twilio_stub, clock, ["2", "#"])
    verified = await queued_now(phone(), twilio_stub, clock, ["1", "1", f"{NUMBER}#", BORN, "1"])
    last = await queued_now(phone(), twilio_stub, clock, ["2", "#"])
    clock.set(clock.now() + timedelta(minutes=10))
    await asked_a_callback(asked, twilio_stub)
    await asked_a_callback(verified, twilio_stub)
    before = await services.queue.waiting()
    assert [(e.call_sid, e.callback) for e in before] == [
        (verified.call_sid, True),  # priority 5
        (first.call_sid, False),
        (asked.call_sid, True),
        (last.call_sid, False),
    ]
    await services.state_outbox.flush()
    kept = kept_callbacks(services.db_engine)
    assert [(sid, settled) for sid, _, settled in kept] == [
        (asked.call_sid, False),
        (verified.call_sid, False),
    ]
    for _, sealed, _ in kept:  # sealed with the app's key: no number in clear, no birth date
        assert sealed is not None and sealed.startswith("2.")
        assert "612345678" not in sealed and NUMBER not in sealed and "1985" not in sealed

    await redis_client.flushdb()  # Redis restarted empty

    recovered = await services.recovery.check()
    assert recovered is not None
    assert (recovered.callers, recovered.callbacks, recovered.locks) == (2, 2, 0)
    assert (recovered.lines.moved, recovered.lines.reserved, recovered.lines.behind) == (0, 4, 0)
    # The callbacks are back at once (their callers will not fetch a waitUrl again) ...
    assert [e.call_sid for e in await services.queue.waiting()] == [
        verified.call_sid,
        asked.call_sid,
    ]
    # ... and the callers on the line take their places in between with their next fetch.
    for caller in (last, first):
        assert "U bent nummer" in (await caller.hold()).text
    assert await services.queue.waiting() == before  # order, context, wait start, callback
    restored = await services.queue.get(verified.call_sid)
    assert restored is not None and restored.application_number == NUMBER
    assert 0 < await redis_client.ttl(keys.queue_entry(asked.call_sid)) <= keys.CALLBACK_TTL


async def test_a_callback_made_before_redis_restarts_empty_is_not_made_again(
    app: FastAPI,
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    redis_client: aioredis.Redis,
    twilio_stub: TwilioStub,
    clock: FixedClock,
) -> None:
    services = app.state.services
    made = await queued_now(phone(), twilio_stub, clock, ["2", "#"])
    waits = await queued_now(phone(), twilio_stub, clock, ["2", "#"])
    clock.set(clock.now() + timedelta(minutes=10))
    await asked_a_callback(made, twilio_stub)
    await asked_a_callback(waits, twilio_stub)
    ann = await signed_in(http, ANN)
    assert (await set_status(http, ann, "available")).json()["call"]["call_sid"] == made.call_sid
    response = await http.post("/api/advisers/me/callback", headers=ann)
    assert response.status_code == 202
    [create] = twilio_stub.creates()
    callback = Phone(
        made.client,
        public_url=PUBLIC_URL,
        auth_token=AUTH_TOKEN,
        call_sid=response.json()["call_sid"],
    )
    await callback.post(create.form["Url"])  # the caller picks up: the callback is made
    await services.state_outbox.flush()
    [(sid, sealed, settled), still] = kept_callbacks(services.db_engine)
    assert (sid, sealed, settled) == (made.call_sid, None, True)  # the sealed number is gone
    assert (still[0], still[2]) == (waits.call_sid, False)

    await redis_client.flushdb()

    recovered = await services.recovery.check()
    assert recovered is not None and (recovered.callers, recovered.callbacks) == (0, 1)
    [entry] = await services.queue.waiting()
    assert (entry.call_sid, entry.callback) == (waits.call_sid, True)


def lockout_reads(engine: Engine) -> list[str]:
    """Every statement that reads identity_lockouts from now on."""
    reads: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "identity_lockouts" in statement:
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    return reads


async def tries(caller: Phone, born: str) -> str:
    """One call to the status question: the number and `born`; what the caller hears."""
    await caller.dial()
    await caller.press("1")
    await caller.press("1")
    await caller.press(f"{NUMBER}#")
    return (await caller.press(born)).text


async def test_an_identity_lockout_outlives_redis_restarting_empty(
    app: FastAPI, phone: Callable[..., Phone], redis_client: aioredis.Redis
) -> None:
    services = app.state.services
    lock = keys.verify_lock_by_number(Pseudonymizer(SECRET_KEY)(NUMBER))
    await services.recovery.check()  # this Redis holds the state (its marker is written)
    reads = lockout_reads(services.db_engine)
    for caller_number in ("+31611111111", "+31622222222"):  # a guesser: 5 failures lock it
        guesser = phone(caller=caller_number)
        await tries(guesser, "04111985")
        for wrong in ("05111985", "06111985"):
            await guesser.press(f"{NUMBER}#")
            await guesser.press(wrong)
    refused = "Wij kunnen deze gegevens niet bevestigen."
    assert (await tries(phone(), BORN)).startswith(refused)  # locked: even the right date
    assert reads == []  # no database read for a lock while Redis holds the state
    await services.state_outbox.flush()
    with services.db_engine.connect() as db:
        [(number_key,)] = db.exec_driver_sql("select number_key from identity_lockouts").all()
    assert NUMBER not in number_key and lock.endswith(number_key)
    reads.clear()  # that was the test's own

    await redis_client.flushdb()  # Redis restarted empty; the recovery has not run yet

    assert (await tries(phone(), BORN)).startswith(refused)  # the database still knows
    assert len(reads) == 1
    assert 24 * 3600 - 60 < await redis_client.ttl(lock) <= 24 * 3600  # back in Redis
    assert (await tries(phone(), BORN)).startswith(refused) and len(reads) == 1

    await redis_client.flushdb()
    recovered = await services.recovery.check()
    assert recovered is not None and recovered.locks == 1
    assert (await tries(phone(), BORN)).startswith(refused)
    assert len(reads) == 2  # the recovery's one read of every lock; none for the try
    other = phone()  # another application is not locked by any of this
    await other.dial()
    await other.press("1")
    await other.press("1")
    await other.press("2345678#")
    assert "Uw aanvraag" in (await other.press("14021990")).text
