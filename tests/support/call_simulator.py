"""Many calls through several real app processes, with this process playing Twilio and advisers.

Used by tests/test_routing_proof.py. The pieces:

* `start_stub` / `start_app`: the Twilio REST stub and `uvicorn api.asgi:app` as processes, with
  bounded waits for readiness and `Process.stop` (terminate, then kill) for cleanup.
* `SpreadTransport`: an httpx transport that sends every request to a random app instance. All
  instances share one KCC_PUBLIC_URL, so a request signed for that URL is valid on any of them
  (the app rebuilds the signed URL from KCC_PUBLIC_URL, never from Host).
* `Simulation`, which plays
  - the callers: api.cli.phone.Phone through the menu into a product's queue (the waitUrl fetched);
    some hang up in the menu, some at a random moment while waiting, some while an adviser's
    phone rings;
  - Twilio: it follows each REST redirect the stub accepted (polled from GET /_stub/requests)
    by POSTing the connect URL, together with the <Enqueue> action (QueueResult=redirected);
    puts the caller in the conference the connect names (the stub runs it: /_stub/dial_conference)
    and delivers the stub's signed callbacks for that offer (the join event, which makes the app
    call the adviser's device in; the adviser leg's status; the Dial action); the adviser's
    phone rings, then is answered or not (/_stub/answer, /_stub/no_answer); after the talk the
    caller or the adviser hangs up at the stub; on a caller's hang-up the call is completed at
    the stub first (later redirects get Twilio's 400/21220), then the status callback and, from a
    queue, the <Enqueue> action (QueueResult=hangup);
  - the advisers' desks: sign in, go available, follow GET /api/advisers/me/events, come back
    from `missed` with "available", half of them end wrap-up early with "ready"; a resync of
    GET /api/advisers/me every few seconds, as the desk page does.
  Everything that happens is written down with time.monotonic() stamps; the stub's request times
  are on the same clock (CLOCK_MONOTONIC is system-wide on Linux), so the order of the app's
  redirects and of this process's requests can be compared exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from api.cli.phone import Phone, PhoneTurn, parse_twiml
from tests.support.paths import ROOT
from tests.support.servers import clean_env
from tests.support.slow import require_slow

try:
    import sniffio  # type: ignore[import-not-found]  # noqa: F401
except ImportError:
    # httpcore tries `import sniffio` for every request; without sniffio installed (anyio 4
    # no longer needs it) each failed attempt searches sys.path again, and that was a third of
    # this process's CPU. None in sys.modules makes the import fail at once, as it would anyway.
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


# Keys from the welcome to the queue of each product ('#' skips the identity check).
ROUTES: dict[str, tuple[str, ...]] = {
    "vog_np": ("1", "2", "#"),  # VOG natural person, procedure
    "vog_rp": ("2", "#"),
    "gva": ("3", "#"),
    "name_change": ("4", "#"),
    "pardon": ("5", "#"),
    "boa": ("6", "1", "#"),
}


# -- processes --------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate, then kill; every wait bounded."""
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0.0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn(name: str, cmd: list[str], env: dict[str, str], log: Path) -> Process:
    require_slow(name)
    with log.open("wb") as out:
        popen = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    return Process(name, popen, log)


def start_stub(tmp: Path, *, account_sid: str, auth_token: str) -> tuple[Process, str]:
    """The Twilio stub in its own process; returns it and its base URL."""
    cmd = [
        sys.executable,
        "-m",
        "tests.support.twilio_stub",
        "--port",
        "0",
        "--account-sid",
        account_sid,
        "--auth-token",
        auth_token,
    ]
    stub = _spawn("twilio-stub", cmd, clean_env(), tmp / "twilio-stub.log")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"twilio stub ready (\S+) ", stub.output())
        if match:
            return stub, match.group(1)
        if stub.popen.poll() is not None:
            break
        time.sleep(0.05)
    stub.stop()
    raise RuntimeError(f"the Twilio stub did not start:\n{stub.output()}")


def start_app(tmp: Path, name: str, port: int, env: dict[str, str]) -> Process:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.asgi:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return _spawn(name, cmd, clean_env(**env), tmp / f"{name}.log")


def wait_healthy(apps: list[tuple[Process, str]], timeout: float = 45) -> None:
    """Every app answers /healthz; raises (with the logs) otherwise."""
    deadline = time.monotonic() + timeout
    pending = list(apps)
    with httpx.Client(timeout=1, verify=False) as http:
        while pending:
            for app, url in list(pending):
                if app.popen.poll() is not None:
                    code = app.popen.returncode
                    raise RuntimeError(f"{app.name} exited with {code}:\n{app.output()}")
                try:
                    if http.get(f"{url}/healthz").status_code == 200:
                        pending.remove((app, url))
                except httpx.TransportError:
                    pass
            if pending and time.monotonic() > deadline:
                logs = "\n".join(f"--- {a.name}\n{a.output()}" for a, _ in pending)
                raise RuntimeError(f"not healthy after {timeout:.0f} s:\n{logs}")
            if pending:
                time.sleep(0.1)


# -- HTTP to a random instance ------------------------------------------------------------------


class SpreadTransport(httpx.AsyncBaseTransport):
    """Sends each request to a random one of `ports` on 127.0.0.1 (whatever the URL says).

    One connection pool per instance, each kept small: httpcore scans every connection of a
    pool for each request, which costs more CPU than the request itself with hundreds.
    """

    def __init__(self, ports: list[int], rng: random.Random, *, connections: int = 40) -> None:
        self._rng = rng
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._pools = {
            port: httpx.AsyncHTTPTransport(limits=limits, verify=False) for port in ports
        }
        self.sent: Counter[int] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        port = self._rng.choice(list(self._pools))
        self.sent[port] += 1
        request.url = request.url.copy_with(host="127.0.0.1", port=port)
        return await self._pools[port].handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


def plain_client() -> httpx.AsyncClient:
    """For the stub's control endpoints and single instances (no TLS context to build)."""
    return httpx.AsyncClient(timeout=10, verify=False)


# -- what happened ----------------------------------------------------------------------------


@dataclass
class Redirect:
    """A REST update the app sent to the stub that moves a call to /twilio/connect."""

    call_sid: str
    offer_id: str
    url: str
    at: float  # when the stub received it (time.monotonic, system-wide)
    status: int  # what the stub answered: 200, or 400 once the caller has gone


@dataclass
class OfferSeen:
    """An offer as Twilio's side followed it (connect posted)."""

    offer_id: str
    redirect_at: float
    adviser: str | None = None  # from <Dial><Client>; None: the connect said "keep waiting"
    result: str = ""  # withdrawn, no-answer, answered, caller-hung-up
    settled_at: float | None = None  # when the request that ended it was sent


@dataclass
class SimCall:
    sid: str
    product: str
    caller: str
    start_delay: float
    hang_up_after: float | None  # seconds after queueing; None: waits until answered
    menu_hang_up_at: int | None  # index of the key before which the caller hangs up
    caller_ends_talk: bool  # the caller, not the adviser, ends the conversation
    hangs_up_ringing: bool = False  # gives up while the first adviser's phone rings
    outcome: str | None = None  # connected, hung_up, error
    adviser: str | None = None
    queued_at: float | None = None
    answered_at: float | None = None
    gone_at: float | None = None  # the caller hung up (before Twilio was told: the stub)
    hung_up_at: float | None = None  # when the caller's final status callback was sent
    ended_at: float | None = None
    offers: list[OfferSeen] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class Ring:
    adviser: str
    call_sid: str
    start: float
    end: float | None = None


class AdviserPhones:
    """The advisers' phones as Twilio sees them: a phone rings or talks for one call at a time."""

    def __init__(self) -> None:
        self.busy: dict[str, Ring] = {}
        self.rings: list[Ring] = []
        self.violations: list[str] = []

    def ring(self, adviser: str, call_sid: str) -> None:
        now = time.monotonic()
        current = self.busy.get(adviser)
        if current is not None:
            self.violations.append(
                f"{adviser} was given {call_sid} while still on {current.call_sid}"
            )
        ring = Ring(adviser, call_sid, now)
        self.busy[adviser] = ring
        self.rings.append(ring)

    def release(self, adviser: str, call_sid: str) -> None:
        """Just before the request that ends the adviser's leg is sent."""
        current = self.busy.get(adviser)
        if current is None or current.call_sid != call_sid:
            self.violations.append(f"{adviser} released {call_sid} they did not hold")
            return
        current.end = time.monotonic()
        del self.busy[adviser]


@dataclass
class Desk:
    name: str
    skills: list[str]
    presses_ready: bool  # ends wrap-up early with "ready" (the others wait for the timer)
    headers: dict[str, str] = field(default_factory=dict)
    acting: bool = False  # a status change is on its way
    events: int = 0  # state events received
    stream_breaks: int = 0
    actions: Counter[str] = field(default_factory=Counter)  # status changes made, and why
    refused: Counter[str] = field(default_factory=Counter)  # 409 answers, by the state named


@dataclass
class Plan:
    calls: int = 300
    concurrency: int = 50  # callers in the menu at once
    arrival_window: float = 3.0  # every caller dials within this many seconds
    hang_up_share: float = 0.15  # callers who give up at a random moment while waiting
    hang_up_window: tuple[float, float] = (0.2, 25.0)  # seconds after queueing
    menu_hang_up_share: float = 0.02  # callers who hang up in the menu
    ringing_hang_up_share: float = 0.03  # callers who hang up while an adviser's phone rings
    no_answer_share: float = 0.2  # offers the adviser does not answer
    caller_ends_share: float = 0.3  # conversations the caller ends (status before dial-result)
    ring_seconds: tuple[float, float] = (0.05, 0.3)
    talk_seconds: tuple[float, float] = (0.1, 0.5)
    wrap_up_seconds: tuple[float, float] = (0.1, 0.6)  # before "ready", for those who press it
    desk_resync_seconds: float = 3.0  # the desk reloads its state (lost events)
    products: dict[str, float] = field(
        default_factory=lambda: {
            "vog_np": 0.35,
            "vog_rp": 0.2,
            "gva": 0.15,
            "name_change": 0.1,
            "pardon": 0.1,
            "boa": 0.1,
        }
    )


def _connect_offer(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.path.endswith("/twilio/connect"):
        return None
    return parse_qs(parts.query).get("offer", [None])[0]


def parse_stub_requests(raw: Iterable[dict[str, Any]]) -> list[Redirect]:
    found = []
    for r in raw:
        if r["method"] != "POST" or not r.get("call_sid"):
            continue
        offer = _connect_offer(r["form"].get("Url", ""))
        if offer is not None:
            found.append(Redirect(r["call_sid"], offer, r["form"]["Url"], r["at"], r["status"]))
    return found


@dataclass
class ConferenceTwiml:
    """What `/twilio/connect` answered: join this conference."""

    name: str
    action: str
    status_callback: str
    events: str
    label: str
    end_conference_on_exit: bool


def parse_conference(twiml: str) -> ConferenceTwiml | None:
    dial = ET.fromstring(twiml).find(".//Dial")
    if dial is None:
        return None
    conference = dial.find("Conference")
    if conference is None:
        raise ValueError(f"<Dial> without <Conference>: {twiml}")
    return ConferenceTwiml(
        name=(conference.text or "").strip(),
        action=dial.get("action", ""),
        status_callback=conference.get("statusCallback", ""),
        events=conference.get("statusCallbackEvent", ""),
        label=conference.get("participantLabel", ""),
        end_conference_on_exit=conference.get("endConferenceOnExit") == "true",
    )


class Simulation:
    def __init__(
        self,
        *,
        public_url: str,
        stub_url: str,
        auth_token: str,
        ports: list[int],
        desks: list[Desk],
        password: str,
        plan: Plan,
        seed: int,
    ) -> None:
        self.public_url = public_url
        self.stub_url = stub_url
        self.auth_token = auth_token
        self.ports = ports
        self.desks = desks
        self.password = password
        self.plan = plan
        self.rng = random.Random(seed)
        self.transport = SpreadTransport(ports, random.Random(seed + 1))
        self.phones = AdviserPhones()
        self.calls: list[SimCall] = []
        self.inbox: dict[str, asyncio.Queue[Redirect]] = {}
        self.anomalies: list[str] = []
        self._menu = asyncio.Semaphore(plan.concurrency)
        self._stop_desks = asyncio.Event()
        self._stop_poller = asyncio.Event()
        self._desk_work: set[asyncio.Task[Any]] = set()
        self.stub = plain_client()
        self._seen_requests = 0

    # -- set-up ----------------------------------------------------------------------------

    def make_calls(self) -> list[SimCall]:
        plan, rng = self.plan, self.rng
        products = list(plan.products)
        weights = [plan.products[p] for p in products]
        calls = []
        for i in range(plan.calls):
            product = rng.choices(products, weights)[0]
            menu_hang_up = rng.random() < plan.menu_hang_up_share
            hangs_up = not menu_hang_up and rng.random() < plan.hang_up_share
            calls.append(
                SimCall(
                    sid=f"CA{i:04d}{rng.getrandbits(112):028x}",
                    product=product,
                    caller="+316" + "".join(rng.choice("0123456789") for _ in range(8)),
                    start_delay=rng.uniform(0, plan.arrival_window),
                    hang_up_after=rng.uniform(*plan.hang_up_window) if hangs_up else None,
                    menu_hang_up_at=rng.randrange(len(ROUTES[product])) if menu_hang_up else None,
                    caller_ends_talk=rng.random() < plan.caller_ends_share,
                )
            )
        patient = [c for c in calls if c.hang_up_after is None and c.menu_hang_up_at is None]
        for call in rng.sample(patient, round(plan.ringing_hang_up_share * plan.calls)):
            call.hangs_up_ringing = True
        self.calls = calls
        self.inbox = {c.sid: asyncio.Queue() for c in calls}
        return calls

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.transport, base_url=self.public_url, timeout=httpx.Timeout(20.0)
        )

    async def __aenter__(self) -> Simulation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stub.aclose()

    # -- the run ---------------------------------------------------------------------------

    async def run(self, http: httpx.AsyncClient, *, timeout: float) -> bool:
        """Desks on, every caller through, desks off. False if callers were still going after
        `timeout` seconds (they are stopped; their outcome stays None)."""
        await asyncio.gather(*(self._sign_in(http, d) for d in self.desks))
        poller = asyncio.create_task(self._poll_stub())
        desks = [asyncio.create_task(self._desk(http, d)) for d in self.desks]
        callers = [asyncio.create_task(self._caller(http, c)) for c in self.calls]
        try:
            _, pending = await asyncio.wait(callers, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*callers, return_exceptions=True)
            await self._settle_desks(http)
        finally:
            self._stop_desks.set()
            self._stop_poller.set()
            await asyncio.gather(*desks, poller, *self._desk_work, return_exceptions=True)
        return not pending

    async def stub_requests(self, http: httpx.AsyncClient) -> list[dict[str, Any]]:
        response = await http.get(f"{self.stub_url}/_stub/requests")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    async def _poll_stub(self) -> None:
        """Hands each redirect the stub accepted to its call, in the order the stub got them."""
        while not self._stop_poller.is_set():
            try:
                requests = await self.stub_requests(self.stub)
            except httpx.HTTPError as exc:
                self.anomalies.append(f"stub poll failed: {exc!r}")
                await asyncio.sleep(0.2)
                continue
            fresh = requests[self._seen_requests :]
            answered = 0
            for r in fresh:
                if r["status"] == 0:
                    break  # still being answered: next time, in order
                answered += 1
            self._seen_requests += answered
            for redirect in parse_stub_requests(fresh[:answered]):
                if redirect.status == 200:
                    self.inbox[redirect.call_sid].put_nowait(redirect)
            await asyncio.sleep(0.1)

    # -- a caller, and Twilio's side of their call --------------------------------------------

    def _phone(self, http: httpx.AsyncClient, call: SimCall) -> Phone:
        return Phone(
            http,
            public_url=self.public_url,
            auth_token=self.auth_token,
            caller=call.caller,
            call_sid=call.sid,
        )

    async def _caller(self, http: httpx.AsyncClient, call: SimCall) -> None:
        try:
            await self._call(http, call)
        except Exception as exc:  # recorded; the test fails on it with the call's story
            call.outcome = call.outcome or "error"
            call.errors.append(f"{type(exc).__name__}: {exc}")

    async def _call(self, http: httpx.AsyncClient, call: SimCall) -> None:
        await asyncio.sleep(call.start_delay)
        phone = self._phone(http, call)
        async with self._menu:
            turn = await phone.dial()
            for index, key in enumerate(ROUTES[call.product]):
                if call.menu_hang_up_at == index:
                    await self._caller_hangs_up(phone, call, in_queue=False)
                    return
                turn = await phone.press(key)
        if turn.queue != f"kcc-{call.product}":
            raise AssertionError(f"not queued for {call.product}: {turn.twiml}")
        call.queued_at = time.monotonic()
        await phone.hold()
        give_up = None if call.hang_up_after is None else call.queued_at + call.hang_up_after
        inbox = self.inbox[call.sid]
        while True:
            wait = None if give_up is None else max(0.0, give_up - time.monotonic())
            try:
                redirect = await asyncio.wait_for(inbox.get(), wait)
            except TimeoutError:
                await self._caller_hangs_up(phone, call, in_queue=True)
                return
            if await self._follow(phone, call, redirect, give_up):
                return

    async def _follow(
        self, phone: Phone, call: SimCall, redirect: Redirect, give_up: float | None
    ) -> bool:
        """Twilio runs the connect URL the call was moved to. True when the call has ended."""
        seen = OfferSeen(redirect.offer_id, redirect.at)
        call.offers.append(seen)
        # Moved out of <Enqueue>: Twilio requests its action right away, and the new URL.
        response, _ = await asyncio.gather(
            phone.post(redirect.url), self._leave_queue(phone, call, "redirected")
        )
        response.raise_for_status()
        conference = parse_conference(response.text)
        if conference is None:  # the offer was withdrawn meanwhile: back to the queue
            seen.result = "withdrawn"
            await self._back_in_queue(phone, call, response.text)
            return False
        # Twilio runs the <Dial><Conference>: the caller joins; the join event calls the adviser.
        joined = await self.stub.post(
            f"{self.stub_url}/_stub/dial_conference",
            json={
                "call_sid": call.sid,
                "name": conference.name,
                "action": conference.action,
                "status_callback": conference.status_callback,
                "status_callback_event": conference.events,
                "label": conference.label,
                "end_conference_on_exit": conference.end_conference_on_exit,
            },
        )
        joined.raise_for_status()
        offer = redirect.offer_id
        leg, adviser = await self._adviser_rings(phone, offer)
        seen.adviser = adviser
        self.phones.ring(adviser, call.sid)
        ring = self.rng.uniform(*self.plan.ring_seconds)
        answers = self.rng.random() >= self.plan.no_answer_share
        if call.hangs_up_ringing:
            give_up = time.monotonic() + self.rng.uniform(0, ring)
        if give_up is not None and give_up < time.monotonic() + ring:
            # The caller gives up while the adviser's phone rings: Twilio ends both legs.
            await asyncio.sleep(max(0.0, give_up - time.monotonic()))
            seen.result = "caller-hung-up"
            self.phones.release(adviser, call.sid)
            seen.settled_at = time.monotonic()
            await self._caller_hangs_up(phone, call, in_queue=False)
            await self._deliver(phone, offer)
            return True
        await asyncio.sleep(ring)
        if not answers:
            seen.result = "no-answer"
            self.phones.release(adviser, call.sid)
            seen.settled_at = time.monotonic()
            await self._stub_control(f"no_answer/{leg}")
            back = await self._dial_action(phone, call, offer)
            await self._back_in_queue(phone, call, back)
            return False
        await self._stub_control(f"answer/{leg}")
        await self._deliver(phone, offer)
        seen.result = "answered"
        call.answered_at = time.monotonic()
        call.adviser = adviser
        await asyncio.sleep(self.rng.uniform(*self.plan.talk_seconds))
        self.phones.release(adviser, call.sid)
        seen.settled_at = time.monotonic()
        call.outcome = "connected"
        if call.caller_ends_talk:
            # The caller hangs up first: the conference ends, its callbacks and the status.
            await self._caller_hangs_up(phone, call, in_queue=False)
            call.outcome = "connected"
            await self._deliver(phone, offer)
            return True
        await self._stub_control(f"hang_up/{leg}")  # the adviser puts the phone down
        done = await self._dial_action(phone, call, offer)
        survey = ET.fromstring(done).find("Gather")
        if survey is not None and "/twilio/survey" in survey.get("action", ""):
            # The flow's survey: the caller is still on the line and types a mark.
            phone.last = parse_twiml(done)
            done = (await phone.press(f"{self.rng.randint(1, 10)}#")).twiml
        if not ET.fromstring(done).findall("Hangup"):
            call.errors.append(f"after the conversation no goodbye: {done}")
        ended = await phone.hang_up()
        ended.raise_for_status()
        call.ended_at = time.monotonic()
        return True

    async def _stub_control(self, path: str) -> None:
        response = await self.stub.post(f"{self.stub_url}/_stub/{path}")
        response.raise_for_status()

    async def _deliver(self, phone: Phone, offer: str) -> list[tuple[dict[str, Any], str]]:
        """Post the stub's callbacks for this offer to the app (a random instance) until none
        are left; returns each callback with the app's answer."""
        done: list[tuple[dict[str, Any], str]] = []
        while True:
            taken = await self.stub.post(f"{self.stub_url}/_stub/callbacks", json={"offer": offer})
            taken.raise_for_status()
            batch: list[dict[str, Any]] = taken.json()
            if not batch:
                return done
            for callback in batch:
                parts = urlsplit(callback["url"])
                response = await phone.client.post(
                    f"{parts.path}?{parts.query}",
                    data=callback["form"],
                    headers={"X-Twilio-Signature": callback["signature"]},
                )
                response.raise_for_status()
                done.append((callback, response.text))

    async def _adviser_rings(self, phone: Phone, offer: str) -> tuple[str, str]:
        """Deliver callbacks until the adviser's leg is placed: its CallSid and the adviser."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for callback, _ in await self._deliver(phone, offer):
                form = callback["form"]
                if "/twilio/adviser-status" in callback["url"] and form["CallStatus"] == "ringing":
                    return form["CallSid"], form["To"].removeprefix("client:")
            await asyncio.sleep(0.02)
        raise AssertionError(f"offer {offer}: no adviser was called into the conference")

    async def _dial_action(self, phone: Phone, call: SimCall, offer: str) -> str:
        """Deliver callbacks until the caller's <Dial> action was answered; its TwiML."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for callback, answer in await self._deliver(phone, offer):
                if "/twilio/dial-result" in callback["url"]:
                    return answer
            await asyncio.sleep(0.02)
        raise AssertionError(f"{call.sid}: the caller never left the conference")

    async def _back_in_queue(self, phone: Phone, call: SimCall, twiml: str) -> None:
        queue = ET.fromstring(twiml).find("Enqueue")
        if queue is None or queue.text != f"kcc-{call.product}":
            call.errors.append(f"not back in kcc-{call.product}: {twiml}")
        phone.last = PhoneTurn(
            twiml=twiml,
            queue=queue.text if queue is not None else None,
            wait_url=queue.get("waitUrl") if queue is not None else None,
            queue_result_url=queue.get("action") if queue is not None else None,
        )
        if phone.last.wait_url:
            await phone.hold()

    async def _caller_hangs_up(self, phone: Phone, call: SimCall, *, in_queue: bool) -> None:
        """The caller puts the phone down: the call is over for Twilio's REST API at once; then
        the status callback, and (in a queue) the <Enqueue> action, in no particular order."""
        call.gone_at = time.monotonic()
        gone = await self.stub.post(f"{self.stub_url}/_stub/hang_up/{call.sid}")
        gone.raise_for_status()
        call.hung_up_at = time.monotonic()
        response, _ = await asyncio.gather(
            phone.hang_up(), self._leave_queue(phone, call, "hangup" if in_queue else None)
        )
        response.raise_for_status()
        call.outcome = "hung_up"
        call.ended_at = time.monotonic()

    async def _leave_queue(self, phone: Phone, call: SimCall, result: str | None) -> None:
        """The <Enqueue> action: Twilio says why the caller left its queue (answer ignored)."""
        url = phone.last.queue_result_url if phone.last is not None else None
        if result is None or url is None:
            return
        extra = {"QueueResult": result, "QueueSid": "QU" + "0" * 32, "QueueTime": "1"}
        response = await phone.post(url, extra)
        response.raise_for_status()
        if ET.fromstring(response.text).find("Enqueue") is not None:
            call.errors.append(f"queue-result {result} put the caller back: {response.text}")

    # -- the advisers' desks -----------------------------------------------------------------

    async def _sign_in(self, http: httpx.AsyncClient, desk: Desk) -> None:
        response = await http.post(
            "/api/token", data={"username": desk.name, "password": self.password}
        )
        response.raise_for_status()
        desk.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        response = await http.post(
            "/api/advisers/me/status", json={"status": "available"}, headers=desk.headers
        )
        response.raise_for_status()
        body = response.json()
        if body["status"] != "available":
            raise AssertionError(f"{desk.name} is {body['status']} after signing in")

    async def _desk(self, http: httpx.AsyncClient, desk: Desk) -> None:
        """A real adviser's desk: the event stream, and a look at the state now and then."""
        stream = asyncio.create_task(self._desk_events(http, desk))
        try:
            while not self._stop_desks.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_desks.wait(), self.plan.desk_resync_seconds)
                if self._stop_desks.is_set():
                    break
                try:
                    await self._act(http, desk, await self._desk_state(http, desk), "resync")
                except httpx.HTTPError as exc:
                    self.anomalies.append(f"{desk.name}'s desk failed: {exc!r}")
        finally:
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream

    async def _desk_events(self, http: httpx.AsyncClient, desk: Desk) -> None:
        """GET /api/advisers/me/events (on a random instance); reconnects when it breaks."""
        while True:
            try:
                async with http.stream(
                    "GET",
                    "/api/advisers/me/events",
                    headers=desk.headers,
                    timeout=httpx.Timeout(10, read=None),
                ) as response:
                    response.raise_for_status()
                    event = ""
                    async for line in response.aiter_lines():
                        if line.startswith("event:"):
                            event = line.removeprefix("event:").strip()
                        elif line.startswith("data:") and event == "state":
                            state = json.loads(line.removeprefix("data:"))["status"]
                            desk.events += 1
                            self._spawn(self._act(http, desk, state, "event"))
            except httpx.HTTPError as exc:
                desk.stream_breaks += 1
                self.anomalies.append(f"{desk.name}'s event stream broke: {exc!r}")
                await asyncio.sleep(0.2)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._desk_work.add(task)
        task.add_done_callback(self._desk_work.discard)

    async def _desk_state(self, http: httpx.AsyncClient, desk: Desk) -> str:
        me = await http.get("/api/advisers/me", headers=desk.headers)
        me.raise_for_status()
        return str(me.json()["status"])

    async def _act(self, http: httpx.AsyncClient, desk: Desk, state: str, seen_by: str) -> str:
        """What the adviser does on seeing `state`: available after a missed call; some end
        their wrap-up with "ready" before its timer does."""
        if state == "missed":
            command, pause = "available", self.rng.uniform(0.05, 0.2)
        elif state == "wrap_up" and desk.presses_ready:
            command, pause = "ready", self.rng.uniform(*self.plan.wrap_up_seconds)
        else:
            return state
        if desk.acting:
            return state
        desk.acting = True
        try:
            await asyncio.sleep(pause)  # reading the screen, or a short wrap-up
            response = await http.post(
                "/api/advisers/me/status", json={"status": command}, headers=desk.headers
            )
        except httpx.HTTPError as exc:
            self.anomalies.append(f"{desk.name} could not say {command}: {exc!r}")
            return state
        finally:
            desk.acting = False
        if response.status_code == 409:  # the state moved on meanwhile (e.g. the timer)
            desk.refused[f"{command} while {state}"] += 1
            return state
        response.raise_for_status()
        desk.actions[f"{command} ({seen_by})"] += 1
        return str(response.json()["status"])

    async def _settle_desks(self, http: httpx.AsyncClient, timeout: float = 10) -> None:
        """Advisers still in `missed` once every call is done come back too (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [
                await self._act(http, d, await self._desk_state(http, d), "at the end")
                for d in self.desks
            ]
            if "missed" not in states:
                return
            await asyncio.sleep(0.2)

    # -- summaries ---------------------------------------------------------------------------

    def outcomes(self) -> Counter[str]:
        return Counter(c.outcome or "unfinished" for c in self.calls)

    def offers_by_result(self) -> Counter[str]:
        return Counter(o.result for c in self.calls for o in c.offers)


async def clock_offsets(
    ports: list[int], headers: dict[str, str], rounds: int = 3
) -> dict[int, float]:
    """Each instance's clock minus this machine's, in ms (median of `rounds`).

    The adviser behind `headers` must have no calls (a skill nobody calls): it is switched
    between available and break, and `since` in each answer is the instance's own now().
    """
    offsets: dict[int, float] = {}
    for port in ports:
        found = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", verify=False) as http:
            for i in range(rounds * 2):
                status = "available" if i % 2 == 0 else "break"
                before = time.time()
                response = await http.post(
                    "/api/advisers/me/status", json={"status": status}, headers=headers
                )
                after = time.time()
                response.raise_for_status()
                since = datetime.fromisoformat(response.json()["since"]).timestamp()
                found.append((since - (before + after) / 2) * 1000)
        offsets[port] = statistics.median(found)
    return offsets
