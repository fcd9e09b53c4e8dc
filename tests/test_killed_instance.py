"""An app instance killed (SIGKILL) in the middle of its calls, a second one serving on (issue 14).

Two `kcc serve` processes share one real Redis and one PostgreSQL schema and move calls with the
real twilio SDK against the Twilio stub (a process of its own). This test plays Twilio (signed
webhooks, the REST redirects followed, the conference run by the stub) and the advisers (the API).
Until the kill everything goes to instance X; then X is killed with SIGKILL and everything Twilio
sends later goes to instance Y, as a load balancer would send it. At the kill:

    call A  on a call with ann (X put it through; its later callbacks would have gone to X)
    call B  ringing at bob's phone (X made the offer and called bob in)
    call E  ringing at dan's phone; its "no-answer" is on its way to X as X dies: lost
    call C  waiting (nobody free)
    call D  waiting

Afterwards, on Y: D hangs up in the queue; cas becomes available and gets C; A's caller hangs
up; bob answers B; Y's timer (`Router.tick`) finds E's offer past its deadline, takes E back to
the head of the line and offers it to ann, who answers. Every call is asserted with exact
outcomes: who answered it, its record, nothing of it left in Redis; no adviser `offered` beyond
the offer's deadline (OFFER_SECONDS + 15 s, plus two ticks and the two clocks' difference) nor
`on_call` after the call's completed status (at once: the status callback's answer).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from api.cli.phone import Phone, PhoneTurn, parse_twiml
from api.database.engine import make_engine
from ivr.records import CallRecord
from routing import keys
from tests.conftest import (
    POSTGRES_SERVICE,
    POSTGRES_UP,
    POSTGRES_URL,
    REDIS_SERVICE,
    REDIS_UP,
    REDIS_URL,
    need_service,
)
from tests.support import staff
from tests.support.call_simulator import (
    Process,
    parse_conference,
    parse_stub_requests,
    start_stub,
    wait_healthy,
)
from tests.support.clock import OPEN_TUESDAY
from tests.support.database import create_schema, schema_url
from tests.support.servers import KCC, clean_env, flushed_redis, free_port
from tests.support.slow import require_slow

pytestmark = pytest.mark.slow  # two `kcc serve` processes and the Twilio stub

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "killed-instance-auth-token-0123456789"
SECRET_KEY = "killed-instance-secret-key-0123456789abcdef012345"
PASSWORD = "killed-instance-password"
PUBLIC_URL = "https://ivr.example.nl"  # the load balancer's: webhooks are signed for it
SCHEMA = f"killed_instance_{os.getpid()}"
OFFER_SECONDS = 3  # an adviser's phone rings this long
OFFER_DEADLINE = OFFER_SECONDS + 15  # routing/board.py: the ring plus the set-up's margin
TICK_SECONDS = 1.0  # api/web/app.py: the routing timer of each instance
CLOCK_SLACK = 2.0  # the two processes' KCC_NOW clocks start a moment apart
ADVISERS = ("ann", "bob", "cas", "dan")


@dataclass
class Instances:
    x: Process  # killed
    y: Process  # serves on
    x_url: str
    y_url: str
    stub_url: str
    db: Engine
    store: redis.Redis


def _spawn_kcc(tmp: Path, name: str, port: int, env: dict[str, str]) -> Process:
    require_slow("kcc serve")
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [*KCC, "serve", "--port", str(port)], cwd=tmp, env=clean_env(**env),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Process(name, popen, log)


def _schema(action: str) -> None:
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            if action == "create":
                connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    finally:
        admin.dispose()


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[Instances]:
    need_service(REDIS_UP, REDIS_SERVICE, "two instances share the real Redis")
    need_service(POSTGRES_UP, POSTGRES_SERVICE, "and the real PostgreSQL")
    processes: list[Process] = []
    _schema("create")
    db = make_engine(schema_url(POSTGRES_URL, SCHEMA))
    store = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        with flushed_redis(REDIS_URL):
            create_schema(db)
            advisers = [staff.adviser(n, PASSWORD, skills=["vog_rp"]) for n in ADVISERS]
            staff.add_staff(db, *advisers, staff.supervisor("sanne", PASSWORD))
            stub, stub_url = start_stub(tmp_path, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
            processes.append(stub)
            env = {
                "KCC_REDIS_URL": REDIS_URL,
                "KCC_DATABASE_URL": schema_url(POSTGRES_URL, SCHEMA),
                "KCC_PUBLIC_URL": PUBLIC_URL,
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "KCC_TWILIO_API_BASE": stub_url,
                "KCC_SECRET_KEY": SECRET_KEY,
                "KCC_NOW": OPEN_TUESDAY,
                "KCC_OFFER_SECONDS": str(OFFER_SECONDS),
                "KCC_WRAP_UP_SECONDS": "1",
                "KCC_LOG_LEVEL": "WARNING",
            }
            ports = [free_port(), free_port()]
            # Started together: each one's KCC_NOW clock starts when it starts.
            apps = []
            for name, port in zip("xy", ports, strict=True):
                folder = tmp_path / name
                folder.mkdir()
                apps.append(_spawn_kcc(folder, f"app-{name}", port, env))
            processes.extend(apps)
            urls = [f"http://127.0.0.1:{p}" for p in ports]
            wait_healthy(list(zip(apps, urls, strict=True)))
            yield Instances(apps[0], apps[1], urls[0], urls[1], stub_url, db, store)
    finally:
        for process in reversed(processes):
            process.stop()
        store.close()
        db.dispose()
        _schema("drop")


class Twilio:
    """Twilio's side: the stub's control endpoints, and its callbacks delivered to an instance."""

    def __init__(self, stub_url: str) -> None:
        self.stub_url = stub_url
        self.http = httpx.AsyncClient(timeout=10)

    async def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.http.post(f"{self.stub_url}/_stub/{path}", json=body)
        response.raise_for_status()
        return response.json()

    async def redirect(self, call_sid: str, seen: int = 0) -> tuple[str, str]:
        """The app's REST redirect of the call to /twilio/connect (after the first `seen`):
        its URL and offer."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            raw = (await self.http.get(f"{self.stub_url}/_stub/requests")).json()
            found = [
                r for r in parse_stub_requests(raw) if r.call_sid == call_sid and r.status == 200
            ]
            if len(found) > seen:
                return found[seen].url, found[seen].offer_id
            await asyncio.sleep(0.05)
        raise AssertionError(f"{call_sid} was not moved to an adviser")

    async def deliver(
        self, client: httpx.AsyncClient, offer: str
    ) -> list[tuple[dict[str, Any], str]]:
        """Post the stub's waiting callbacks for the offer's URLs to the instance, until none
        are left; each callback with the instance's answer."""
        done = []
        while batch := await self.control("callbacks", {"offer": offer}):
            for callback in batch:
                parts = urlsplit(callback["url"])
                response = await client.post(
                    f"{parts.path}?{parts.query}",
                    data=callback["form"],
                    headers={"X-Twilio-Signature": callback["signature"]},
                )
                assert response.status_code == 200, response.text
                done.append((callback, response.text))
        return done

    async def lose(self, offer: str) -> int:
        """The callbacks sent to an instance as it died: gone (Twilio does not send them again)."""
        return len(await self.control("callbacks", {"offer": offer}))


@dataclass
class Caller:
    phone: Phone
    twilio: Twilio

    @property
    def sid(self) -> str:
        return self.phone.call_sid

    async def to_queue(self) -> None:
        await self.phone.dial()
        await self.phone.press("2")
        turn = await self.phone.press("#")
        assert turn.queue == "kcc-vog_rp", turn.twiml
        hold = await self.phone.hold()  # the waitUrl: the caller hears music, not silence
        assert hold.twiml.count("<Play") == 1 or "<Say" in hold.twiml, hold.twiml

    async def connect(self, seen: int = 0) -> tuple[str, str]:
        """Twilio follows the app's redirect: the caller leaves <Enqueue> and joins the
        conversation's conference. Its offer and the conference's friendly name."""
        url, offer = await self.twilio.redirect(self.sid, seen)
        response, _ = await asyncio.gather(self.phone.post(url), self._left_queue("redirected"))
        response.raise_for_status()
        conference = parse_conference(response.text)
        assert conference is not None, response.text
        await self.twilio.control(
            "dial_conference",
            {
                "call_sid": self.sid,
                "name": conference.name,
                "action": conference.action,
                "status_callback": conference.status_callback,
                "status_callback_event": conference.events,
                "label": conference.label,
                "end_conference_on_exit": conference.end_conference_on_exit,
            },
        )
        return offer, conference.name

    async def adviser_rings(self, offer: str) -> tuple[str, str]:
        """Deliver the offer's callbacks until the adviser's phone rings: the leg and who."""
        for callback, _ in await self.twilio.deliver(self.phone.client, offer):
            form = callback["form"]
            if "/twilio/adviser-status" in callback["url"] and form["CallStatus"] == "ringing":
                return form["CallSid"], form["To"].removeprefix("client:")
        raise AssertionError(f"offer {offer}: no adviser was called in")

    async def hang_up(self, *, in_queue: bool) -> httpx.Response:
        """The caller puts the phone down: the call ends at Twilio, then its callbacks."""
        await self.twilio.control(f"hang_up/{self.sid}")
        if in_queue:
            await self._left_queue("hangup")
        response = await self.phone.hang_up()
        response.raise_for_status()
        return response

    async def _left_queue(self, result: str) -> None:
        url = self.phone.last.queue_result_url if self.phone.last else None
        if url is not None:
            extra = {"QueueResult": result, "QueueSid": "QU" + "0" * 32, "QueueTime": "1"}
            (await self.phone.post(url, extra)).raise_for_status()


def back_in_line(twiml: str) -> PhoneTurn:
    turn = parse_twiml(twiml)
    assert turn.queue == "kcc-vog_rp", twiml
    return turn


async def state(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> str:
    advisers = (await client.get("/api/advisers", headers=headers)).raise_for_status().json()
    return str(next(a["status"] for a in advisers if a["name"] == name))


async def wait_state(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, wanted: str, within: float
) -> float:
    start = time.monotonic()
    while (now := await state(client, headers, name)) != wanted:
        assert time.monotonic() - start < within, f"{name} is {now}, not {wanted}"
        await asyncio.sleep(0.1)
    return time.monotonic() - start


def records(db: Engine) -> dict[str, CallRecord]:
    with Session(db) as session:
        return {r.call_sid: r for r in session.exec(select(CallRecord)).all()}


async def test_a_killed_instance_leaves_no_call_and_no_adviser_behind(
    instances: Instances,
) -> None:
    twilio = Twilio(instances.stub_url)
    x = httpx.AsyncClient(base_url=instances.x_url, timeout=20)
    y = httpx.AsyncClient(base_url=instances.y_url, timeout=20)
    try:
        await _run(instances, twilio, x, y)
    finally:
        await asyncio.gather(x.aclose(), y.aclose(), twilio.http.aclose())


async def _run(
    instances: Instances, twilio: Twilio, x: httpx.AsyncClient, y: httpx.AsyncClient
) -> None:
    desks = {}
    for name in (*ADVISERS, "sanne"):
        token = await x.post("/api/token", data={"username": name, "password": PASSWORD})
        desks[name] = {"Authorization": f"Bearer {token.raise_for_status().json()['access_token']}"}
    look = desks["sanne"]  # the supervisor reads the advisers' states

    def caller(number: int) -> Caller:
        phone = Phone(
            x, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, caller=f"+3161234567{number}"
        )
        return Caller(phone, twilio)

    async def available(client: httpx.AsyncClient, name: str) -> None:
        response = await client.post(
            "/api/advisers/me/status", json={"status": "available"}, headers=desks[name]
        )
        # "offered" when a call was waiting: the answer says the match made already
        assert response.raise_for_status().json()["status"] in ("available", "offered")

    # -- before the kill: everything through X ----------------------------------------------
    a, b, c, d, e = (caller(n) for n in range(5))
    await available(x, "ann")
    await a.to_queue()
    offer_a, _ = await a.connect()
    leg_a, who = await a.adviser_rings(offer_a)
    assert who == "ann"
    await twilio.control(f"answer/{leg_a}")
    await twilio.deliver(x, offer_a)
    assert await state(x, look, "ann") == "on_call"

    await available(x, "bob")
    await b.to_queue()
    offer_b, _ = await b.connect()
    leg_b, who = await b.adviser_rings(offer_b)
    assert who == "bob"

    await available(x, "dan")
    await e.to_queue()
    offer_e, _ = await e.connect()
    offered_e_at = time.monotonic()
    leg_e, who = await e.adviser_rings(offer_e)
    assert who == "dan"

    await c.to_queue()
    await d.to_queue()
    queue = (await x.get("/api/queue", headers=look)).raise_for_status().json()
    assert len(queue) == 2, queue  # C and D; A, B and E are with advisers

    # Dan's phone stops ringing unanswered; Twilio's callbacks are on their way to X as it dies.
    await twilio.control(f"no_answer/{leg_e}")
    instances.x.popen.send_signal(signal.SIGKILL)
    assert instances.x.popen.wait(timeout=10) == -signal.SIGKILL
    assert await twilio.lose(offer_e) == 1  # the no-answer status of dan's leg

    # -- after the kill: everything through Y ----------------------------------------------
    for call in (a, b, c, d, e):
        call.phone.client = y

    # D gives up in the queue: cleaned up, recorded as abandoned.
    await d.hang_up(in_queue=True)
    # cas comes in: Y gives her C, the head of the line (B and E are still offered).
    await available(y, "cas")
    offer_c, _ = await c.connect()
    leg_c, who = await c.adviser_rings(offer_c)
    assert who == "cas"
    await twilio.control(f"answer/{leg_c}")
    await twilio.deliver(y, offer_c)
    assert await state(y, look, "cas") == "on_call"

    # A's caller hangs up: the conference's callbacks and the call's status reach Y.
    await a.hang_up(in_queue=False)
    assert await state(y, look, "ann") in ("wrap_up", "available")  # not on_call: at once
    await twilio.deliver(y, offer_a)
    await wait_state(y, look, "ann", "available", within=1 + 2 * TICK_SECONDS)

    # Bob answers B: the offer X made, put through by Y.
    await twilio.control(f"answer/{leg_b}")
    await twilio.deliver(y, offer_b)
    assert await state(y, look, "bob") == "on_call"

    # E: the no-answer was lost. Y's timer takes the offer back at its deadline: dan missed,
    # the caller taken out of the conference, back in line at its head, hearing the queue.
    assert await state(y, look, "dan") == "offered"
    bound = OFFER_DEADLINE + 2 * TICK_SECONDS + CLOCK_SLACK
    await wait_state(y, look, "dan", "missed", within=bound - (time.monotonic() - offered_e_at))
    missed_after = time.monotonic() - offered_e_at
    assert OFFER_DEADLINE - CLOCK_SLACK <= missed_after <= bound
    dial_action = [
        answer for callback, answer in await twilio.deliver(y, offer_e)
        if "/twilio/dial-result" in callback["url"]
    ]  # fmt: skip
    assert len(dial_action) == 1
    e.phone.last = back_in_line(dial_action[0])
    await e.phone.hold()
    # Ann is free: E is hers.
    offer_e2, _ = await e.connect(seen=1)
    leg_e2, who = await e.adviser_rings(offer_e2)
    assert who == "ann"
    await twilio.control(f"answer/{leg_e2}")
    await twilio.deliver(y, offer_e2)
    assert await state(y, look, "ann") == "on_call"

    # The conversations end: C's and E's callers hang up, bob puts the phone down on B.
    for call, offer in ((c, offer_c), (e, offer_e2)):
        await call.hang_up(in_queue=False)
        await twilio.deliver(y, offer)
    await twilio.control(f"hang_up/{leg_b}")
    goodbye = [
        answer for callback, answer in await twilio.deliver(y, offer_b)
        if "/twilio/dial-result" in callback["url"]
    ]  # fmt: skip
    assert len(goodbye) == 1 and "/twilio/survey" in goodbye[0], goodbye  # the survey's question
    (await b.phone.hang_up()).raise_for_status()

    # -- what is left ---------------------------------------------------------------------
    for name in ("ann", "bob", "cas"):
        await wait_state(y, look, name, "available", within=1 + 2 * TICK_SECONDS + 1)
    assert await state(y, look, "dan") == "missed"
    deadline = time.monotonic() + 10
    while len(found := records(instances.db)) < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert {sid: (r.adviser, r.abandoned) for sid, r in found.items()} == {
        a.sid: ("ann", False),
        b.sid: ("bob", False),
        c.sid: ("cas", False),
        d.sid: (None, True),
        e.sid: ("ann", False),
    }
    store = instances.store
    assert store.zcard(keys.queue("vog_rp")) == 0
    assert list(store.scan_iter(match=keys.queue_entry("*"))) == []
    assert list(store.scan_iter(match=keys.call_offer("*"))) == []
    assert store.zcard(keys.offer_deadlines()) == 0
    assert store.llen(keys.record_outbox()) == 0
    sessions = [k for k in store.scan_iter(match=keys.session("CA*")) if k.count(":") == 2]
    assert sessions == []
    # Only X's offers: A, B, E (then E again from Y), C; each settled once.
    assert sorted(int(o) for o in (offer_a, offer_b, offer_c, offer_e, offer_e2)) == list(
        range(1, 6)
    )
