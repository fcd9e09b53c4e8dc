"""Load test of the whole path: callers arriving at random through menu, identity check, queue,
an adviser who answers and hangs up, and the status callback, with hundreds of desks listening.

    .venv/bin/python -m bench.load --duration 60 --rate 100 \\
        --redis-url redis://127.0.0.1:6379/7 \\
        --database-url postgresql://postgres@127.0.0.1:5432/kcc_load
    .venv/bin/python -m bench.load --duration 5 --rate 5 --advisers 20 --desks 20   # smoke

What runs (all on this machine):

* two `kcc serve` processes (uvicorn with uvloop and httptools, as in production) sharing one
  public URL (requests are signed for it; each goes to the next instance, round robin), on the
  real Redis (the database of --redis-url, flushed) and PostgreSQL (a schema of the bench's own
  in --database-url, made by `kcc db upgrade`, dropped at the end), signatures checked, the
  demo applications imported (`kcc applications import`);
* this process, the load generator on uvloop, which plays
  - Twilio's REST API: tests/support/twilio_stub.py's app served in this process's event loop,
    so a REST redirect the app sends reaches its caller at once (no polling) and the stub's
    conference simulation makes the signed callbacks, which are delivered as Twilio would;
  - the callers: arrivals at random (a Poisson process at --rate), each a whole call over raw
    keep-alive HTTP: POST /twilio/voice, the menu keys to a product, the application number and
    date of birth of a demo application (verified), <Enqueue> and its waitUrl, then the offer:
    the stub's redirect, /twilio/connect and the <Enqueue> action, the <Dial><Conference> join,
    the conference and adviser-leg callbacks (ringing, answered), talk, the adviser hangs up,
    the <Dial> action (the survey, answered with a mark), the status callback `completed`.
    A share of callers (--abandon-share) hangs up while waiting instead;
  - the advisers: --desks adviser accounts, each with its event stream open
    (GET /api/advisers/me/events), the first --advisers of them available; wrap-up ends on the
    app's timer (KCC_WRAP_UP_SECONDS). The time from the stub receiving an offer's redirect to
    the desk receiving its `offer` event is the offer latency.

Reported: calls/s placed and completed, p50/p99 per webhook route, offer latency, errors (any
non-200, unexpected TwiML, an apology, an error in an app's log, a fallback counted on /metrics),
lost calls (placed but neither answered nor abandoned, or without a call record), double
assignments (a call put through twice, an adviser given a call while on another: from this
process's records, the stub's redirects and the call records in PostgreSQL), what is left in
Redis, CPU per process (generator, each app, Redis, PostgreSQL, the rest of the machine), the
generator's CPU per call placed (from the first arrival until the calls drained), and
Redis commands and bytes per call (INFO stats and commandstats before and after, less what the
idle desks cost, measured first). Exit status 1 on any error, lost or double call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import math
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit

import redis
import uvicorn
import uvloop
from sqlalchemy import text
from sqlmodel import Session, select
from starlette.requests import Request
from starlette.responses import Response

from api.accounts import Role, User, create_user, default_device
from api.database.engine import make_engine
from api.database.schema import upgrade
from api.web.tokens import issue_token
from bench.webhooks import BadAnswer, Connection, Signer, machine, source_info, twiml
from ivr.identity.applications import DateOfBirthHasher
from ivr.identity.importer import import_applications
from ivr.records import CallRecord
from routing import keys
from tests.support.twilio_conferences import Callback, Conferences
from tests.support.twilio_stub import TwilioStub, _basic_auth

ROOT = Path(__file__).resolve().parent.parent
AUTH_TOKEN = "load-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "2" * 32
SECRET_KEY = "load-secret-key-" + "0123456789abcdef" * 3
PASSWORD = "load-test-password"
OPEN_MOMENT = "2026-12-01T10:00:00+01:00"  # a Tuesday morning: open
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEMO_CSV = ROOT / "api" / "cli" / "demo_applications.csv"
# Menu keys from the welcome to each product's identity question (tests/support/call_simulator).
MENU: dict[str, tuple[str, ...]] = {
    "vog_np": ("1", "2"),
    "vog_rp": ("2",),
    "gva": ("3",),
    "name_change": ("4",),
    "pardon": ("5",),
    "boa": ("6", "1"),
}
PRODUCTS = {"vog_np": 0.35, "vog_rp": 0.2, "gva": 0.15, "name_change": 0.1, "pardon": 0.1}
PRODUCTS |= {"boa": 0.1}
KEEP_ALIVE_SECONDS = 3.0  # a connection idle longer is not reused (uvicorn closes after 5 s)
TARGET_CALLS_PER_S = 100.0
TARGET_WEBHOOK_P99_MS = 50.0
TARGET_OFFER_P99_MS = 100.0
FORM_TYPE = "application/x-www-form-urlencoded"


def write_applications(path: Path, count: int, seed: int) -> list[tuple[str, str]]:
    """A CSV of `count` made-up applications in the demo file's format, one per caller (the
    guessing guard counts a check in flight as a failure until it verifies, so thousands of
    callers on the seven demo applications would lock them); returns (application number,
    date of birth as typed: DDMMYYYY) of each."""
    rng = random.Random(seed)
    with DEMO_CSV.open(encoding="utf-8-sig", newline="") as file:
        demo = list(csv.DictReader(file))
    rows, typed = [], []
    for i in range(count):
        born = date(1950, 1, 1) + timedelta(days=rng.randrange(50 * 365))
        like = demo[i % len(demo)]
        rows.append(
            {**like, "application_number": f"{80_000_000 + i}", "date_of_birth": born.isoformat()}
        )
        typed.append((f"{80_000_000 + i}", born.strftime("%d%m%Y")))
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(demo[0]))
        writer.writeheader()
        writer.writerows(rows)
    return typed


# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process on the machine (the server is shared)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if stat[stat.index("(") + 1 : stat.rindex(")")] in ("postgres", "postmaster"):
                fields = stat.rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLK_TCK


@dataclass
class App:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def errors(self) -> list[str]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if "Traceback" in line or "ERROR" in line:
                    found.append(line)
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
                found.append(line)
        return found

    def warnings(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("level") == "warning":
                    found[str(entry.get("message"))] += 1
        return found


def start_app(name: str, port: int, env: dict[str, str], workdir: Path) -> App:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "kcc"), "serve", "--port", str(port)],
            cwd=workdir,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return App(name, port, proc, log)


def wait_healthy(apps: list[App], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for app in apps:
        while True:
            if app.proc.poll() is not None:
                raise RuntimeError(f"{app.name} exited:\n{app.log.read_text(errors='replace')}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{app.port}/readyz", timeout=1) as r,
            ):
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app.name} not ready:\n{app.log.read_text(errors='replace')}")
            time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def schema_url(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


# -- the Twilio stub, in this process ----------------------------------------------------------


def offer_of(url: str) -> str:
    """The query parameter offer=N of a URL ("" without one): what parse_qs would give, for a
    fraction of its cost (every callback and redirect is looked up by it)."""
    for pair in url.partition("?")[2].split("&"):
        name, _, value = pair.partition("=")
        if name == "offer":
            return unquote_plus(value) if "%" in value or "+" in value else value
    return ""


class SignallingConferences(Conferences):
    """The stub's conferences as the generator needs them, cheaper per call: callbacks kept
    per offer (taking one offer's is a dict pop; the stub's one list, every call's callbacks in
    flight, was scanned with two URL parses an entry, and more calls in flight cost each take more),
    signed once with the bench's Signer (the same HMAC-SHA1 as twilio's RequestValidator,
    checked against it before a run) and that signature sent, and whoever waits for an offer's
    callbacks woken. Only each offer's own order is kept (the generator takes by offer)."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        super().__init__(account_sid, auth_token)
        self.signer = Signer(auth_token)
        self.pending: dict[str, list[Callback]] = {}  # offer -> its callbacks not yet taken
        self.waiting: dict[str, asyncio.Event] = {}

    def reset(self) -> None:
        super().reset()
        self.pending.clear()

    def take_outbox(self, offer: str | None = None) -> list[Callback]:
        if offer is None:
            taken = [c for batch in self.pending.values() for c in batch]
            self.pending.clear()
            return taken
        return self.pending.pop(offer, [])

    def _send(self, url: str, form: dict[str, str]) -> None:
        offer = offer_of(url)
        callback = Callback(url, form, self.signer.sign(url, form))
        self.pending.setdefault(offer, []).append(callback)
        event = self.waiting.get(offer)
        if event is not None:
            event.set()


class InProcessStub(TwilioStub):
    """The Twilio stub whose accepted redirects to /twilio/connect go straight to their call."""

    def __init__(self, on_redirect: Any) -> None:
        super().__init__(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
        self.conferences = SignallingConferences(ACCOUNT_SID, AUTH_TOKEN)
        self.on_redirect = on_redirect

    def _do_update(self, call_sid: str | None, form: dict[str, str]) -> Response:
        response = super()._do_update(call_sid, form)
        url = form.get("Url", "")
        if call_sid and response.status_code == 200 and "/twilio/connect" in url:
            self.on_redirect(call_sid, url, time.monotonic())
        return response

    async def _handle(self, request: Request, call_sid: str | None, action: Any) -> Response:
        """The stub's own for a form POST, less its dearest parts: the form read with parse_qsl
        (the same pairs as Starlette's multipart parser gives, a repeated name still joined with
        spaces) and no request log (nothing here reads it; it grew by three entries a call).
        Anything else (GET, DELETE, another body) as the stub does it."""
        content_type = request.headers.get("content-type", "")
        if request.method != "POST" or not content_type.startswith(FORM_TYPE):
            return await super()._handle(request, call_sid, action)
        form: dict[str, str] = {}
        for name, value in parse_qsl((await request.body()).decode(), keep_blank_values=True):
            form[name] = f"{form[name]} {value}" if name in form else value
        with self._lock:
            generation, failure = self._generation, self._take_failure(call_sid)
        auth = _basic_auth(request)
        return await self._answer(request, call_sid, form, auth, failure, action, generation)

    async def serve(self) -> uvicorn.Server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        sock.listen(2048)
        config = uvicorn.Config(
            self.app,
            http="httptools",
            ws="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # a middleware less a request; nothing here reads the client
        )
        server = uvicorn.Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return server

    async def callbacks(self, offer: str, timeout: float = 10.0) -> list[Callback]:
        """The offer's callbacks, waiting (bounded) until there is at least one."""
        conferences: SignallingConferences = self.conferences  # type: ignore[assignment]
        event = conferences.waiting.setdefault(offer, asyncio.Event())
        deadline = time.monotonic() + timeout
        try:
            while True:
                event.clear()
                taken = self.take_callbacks(offer)
                if taken:
                    return taken
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BadAnswer("no-callback", f"offer {offer}: nothing from Twilio")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), left)
        finally:
            conferences.waiting.pop(offer, None)


# -- HTTP to the apps ------------------------------------------------------------------------


class AppConnection(Connection):
    """bench.webhooks' keep-alive connection (the same requests, signed and read the same way),
    with when it last answered: the pool drops one idle longer than the server keeps it."""

    def __init__(self, port: int, signer: Signer) -> None:
        super().__init__(port, signer)
        self.last_used = 0.0  # time.monotonic() of its last answer

    @property
    def usable(self) -> bool:
        """Open, and not closed by the server (its end of the stream not yet read)."""
        return self.reader is not None and not self.reader.at_eof()


class Apps:
    """Keep-alive connections to the app instances; each request goes to the next instance."""

    def __init__(self, ports: list[int], public_url: str) -> None:
        self.ports = ports
        self.public_url = public_url
        self.signer = Signer(AUTH_TOKEN)
        self.idle: dict[int, list[AppConnection]] = {p: [] for p in ports}
        self._next = 0
        self.latencies: dict[str, list[float]] = defaultdict(list)  # route -> ms
        self.requests = 0

    async def post(
        self, route: str, url: str, params: dict[str, str], signature: str | None = None
    ) -> bytes:
        port = self.ports[self._next % len(self.ports)]
        self._next += 1
        idle = self.idle[port]
        now = time.monotonic()
        while idle and (now - idle[-1].last_used > KEEP_ALIVE_SECONDS or not idle[-1].usable):
            idle.pop().close()  # the server may have closed it (uvicorn: after 5 s idle)
        conn = idle.pop() if idle else AppConnection(port, self.signer)
        conn.public = self.public_url  # signed for the one public URL, whichever instance
        data = conn.request(url, params, signature)
        started = time.perf_counter()
        try:
            body = await conn.post(data)
        except BaseException:
            conn.close()
            raise
        self.latencies[route].append((time.perf_counter() - started) * 1000)
        self.requests += 1
        if conn.usable:
            conn.last_used = time.monotonic()
            idle.append(conn)
        return body

    def close(self) -> None:
        for idle in self.idle.values():
            for conn in idle:
                conn.close()


class ParsedAnswers:
    """TwiML answers parsed once per distinct body: most of a call's are the same bytes for
    every caller (the welcome, the menus, the waiting message, the survey, <Response/>), and
    parsing was the dearest part of reading them. The same check as bench.webhooks' twiml; the
    trees are only read. The most recently used `size` kept (a body with a token in it, as the
    identity step's and the connect's, does not push the common ones out)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.trees: dict[bytes, ET.Element] = {}

    def parse(self, body: bytes) -> ET.Element:
        tree = self.trees.pop(body, None)
        if tree is None:
            tree = twiml(body)  # BadAnswer if it is not TwiML: not kept
            if len(self.trees) >= self.size:
                del self.trees[next(iter(self.trees))]  # the least recently used
        self.trees[body] = tree
        return tree


def expect(root: ET.Element, tag: str, step: str) -> ET.Element:
    found = root.find(f".//{tag}")
    if found is None:
        raise BadAnswer(f"{step}-no-{tag.lower()}", ET.tostring(root, encoding="unicode")[:300])
    return found


# -- the simulation --------------------------------------------------------------------------


@dataclass
class Call:
    sid: str
    product: str
    application: tuple[str, str]
    caller: str
    abandons_after: float | None  # seconds after queueing; None: waits until answered
    placed_at: float = 0.0
    outcome: str = ""  # answered, abandoned, error
    adviser: str | None = None
    redirects: int = 0  # connects followed (more than one: the call was offered again)
    answered: int = 0
    error: str = ""


@dataclass
class Desk:
    name: str
    token: str
    port: int
    offers: int = 0
    breaks: int = 0


@dataclass
class Offer:
    redirect_at: float
    call_sid: str
    desk_at: float | None = None


class Simulation:
    def __init__(
        self,
        args: argparse.Namespace,
        apps: Apps,
        stub: InProcessStub,
        applications: list[tuple[str, str]],
    ) -> None:
        self.args = args
        self.apps = apps
        self.stub = stub
        self.rng = random.Random(args.seed)
        self.applications = applications
        self.calls: list[Call] = []
        self.inbox: dict[str, asyncio.Queue[tuple[str, float]]] = {}
        self.offers: dict[str, Offer] = {}
        self.busy: dict[str, str] = {}  # adviser -> the call their phone rings or talks for
        self.violations: list[str] = []
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.desks_ready = 0
        self.desk_errors: Counter[str] = Counter()
        self.not_delivered: Counter[str] = Counter()  # Twilio callbacks by event
        self.answers = ParsedAnswers()

    def redirected(self, call_sid: str, url: str, at: float) -> None:
        offer = offer_of(url)
        self.offers[offer] = Offer(at, call_sid)
        inbox = self.inbox.get(call_sid)
        if inbox is not None:
            inbox.put_nowait((url, at))

    def _error(self, call: Call, exc: BaseException) -> None:
        kind = exc.kind if isinstance(exc, BadAnswer) else type(exc).__name__
        self.errors[kind] += 1
        call.outcome, call.error = "error", f"{kind}: {exc}"[:400]
        if len(self.error_samples) < 8:
            self.error_samples.append(f"{call.sid}: {call.error}")

    # -- desks ---------------------------------------------------------------------------------

    async def desk(self, desk: Desk, stop: asyncio.Event) -> None:
        """The desk's event stream: `offer` events timed; reconnects if it breaks."""
        first = True
        while not stop.is_set():
            writer = None
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", desk.port)
                writer.write(
                    (
                        f"GET /api/advisers/me/events?desk=load{desk.name} HTTP/1.1\r\n"
                        f"Host: 127.0.0.1:{desk.port}\r\nAuthorization: Bearer {desk.token}\r\n"
                        "Accept: text/event-stream\r\n\r\n"
                    ).encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                if head[9:12] != b"200":
                    raise BadAnswer("desk-http-" + head[9:12].decode(), head[:200].decode())
                event = ""
                while not stop.is_set():
                    line = await reader.readline()
                    if not line:
                        raise BadAnswer("desk-stream-closed")
                    if line.startswith(b"event:"):
                        event = line[6:].strip().decode()
                    elif line.startswith(b"data:"):
                        if event == "state" and first:
                            first = False
                            self.desks_ready += 1
                        elif event == "offer":
                            self._desk_offer(desk, json.loads(line[5:]))
                        event = ""
            except (OSError, BadAnswer, asyncio.IncompleteReadError) as exc:
                if stop.is_set():
                    return
                desk.breaks += 1
                self.desk_errors[
                    exc.kind if isinstance(exc, BadAnswer) else type(exc).__name__
                ] += 1
                await asyncio.sleep(0.5)
            finally:
                if writer is not None:
                    writer.close()

    def _desk_offer(self, desk: Desk, card: dict[str, Any]) -> None:
        now = time.monotonic()
        desk.offers += 1
        offer = self.offers.get(str(card.get("offer_id")))
        if offer is not None and offer.desk_at is None:
            offer.desk_at = now

    # -- callers -------------------------------------------------------------------------------

    def make_call(self, number: int) -> Call:
        rng = self.rng
        product = rng.choices(list(PRODUCTS), list(PRODUCTS.values()))[0]
        abandons = rng.random() < self.args.abandon_share
        call = Call(
            sid=f"CA{number:08d}{secrets.token_hex(12)}",
            product=product,
            application=self.applications[(number - 1) % len(self.applications)],
            caller=f"+316{number:08d}",
            # At once or nearly: racing the offer that may be on its way (the app's redirect
            # then meets a call that has ended, or the status callback withdraws the offer).
            abandons_after=rng.uniform(0.0, 0.05) if abandons else None,
        )
        self.calls.append(call)
        self.inbox[call.sid] = asyncio.Queue()
        return call

    def params(self, call: Call, extra: dict[str, str]) -> dict[str, str]:
        return {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": "in-progress",
            "Caller": call.caller,
            "Direction": "inbound",
            "From": call.caller,
            "To": "+31703704900",
            **extra,
        }

    async def post(self, route: str, call: Call, url: str, extra: dict[str, str]) -> ET.Element:
        return self.answers.parse(await self.apps.post(route, url, self.params(call, extra)))

    async def run_call(self, call: Call) -> None:
        try:
            await self._call(call)
        except Exception as exc:
            self._error(call, exc)
        finally:
            self.inbox.pop(call.sid, None)

    async def _call(self, call: Call) -> None:
        call.placed_at = time.monotonic()
        public = self.apps.public_url
        root = await self.post("voice", call, f"{public}/twilio/voice", {"CallStatus": "ringing"})
        for key in MENU[call.product]:
            action = expect(root, "Gather", "menu").get("action", "")
            root = await self.post("step (menu)", call, action, {"Digits": key})
        number, born = call.application
        action = expect(root, "Gather", "identity").get("action", "")
        root = await self.post("step (application number)", call, action, {"Digits": number})
        action = expect(root, "Gather", "date-of-birth").get("action", "")
        root = await self.post("step (date of birth)", call, action, {"Digits": born})
        enqueue = expect(root, "Enqueue", "verified")
        if enqueue.text != f"kcc-{call.product}":
            raise BadAnswer("wrong-queue", ET.tostring(root, encoding="unicode")[:300])
        queued_at = time.monotonic()
        await self._wait(call, enqueue)
        if call.abandons_after is not None:
            # Gone whatever Twilio was doing: an offer is often on its way already (made by
            # the step that queued the call), and the app must take it back.
            await asyncio.sleep(max(0.0, queued_at + call.abandons_after - time.monotonic()))
            await self._abandon(call, enqueue)
            return
        inbox = self.inbox[call.sid]
        while True:
            url, _ = await inbox.get()
            back = await self._offer(call, enqueue, url)
            if back is None:
                return
            enqueue = back

    async def _wait(self, call: Call, enqueue: ET.Element) -> None:
        extra = {"QueuePosition": "1", "QueueSid": "QU" + "0" * 32, "QueueTime": "0"}
        await self.post("wait", call, enqueue.get("waitUrl", ""), extra)

    async def _queue_result(self, call: Call, enqueue: ET.Element, result: str) -> None:
        extra = {"QueueResult": result, "QueueSid": "QU" + "0" * 32, "QueueTime": "1"}
        root = await self.post("queue-result", call, enqueue.get("action", ""), extra)
        if root.find("Enqueue") is not None:
            raise BadAnswer("queue-result-requeued", ET.tostring(root, encoding="unicode")[:300])

    async def _abandon(self, call: Call, enqueue: ET.Element) -> None:
        self.stub.hang_up_caller(call.sid)  # gone for Twilio's REST API at once
        status = {"CallStatus": "completed", "CallDuration": "42"}
        await asyncio.gather(
            self.post("status", call, f"{self.apps.public_url}/twilio/status", status),
            self._queue_result(call, enqueue, "hangup"),
        )
        call.outcome = "abandoned"

    async def _offer(self, call: Call, enqueue: ET.Element, url: str) -> ET.Element | None:
        """Twilio follows the redirect to the adviser; the <Enqueue> to return to if the offer
        was withdrawn, else None once the call has ended."""
        call.redirects += 1
        root, _ = await asyncio.gather(
            self.post("connect", call, url, {}), self._queue_result(call, enqueue, "redirected")
        )
        dial = root.find("Dial")
        if dial is None:  # withdrawn meanwhile: back in line
            return expect(root, "Enqueue", "connect-withdrawn")
        conference = expect(dial, "Conference", "connect")
        offer = offer_of(url)
        joined = self.stub.dial_conference(
            call.sid,
            (conference.text or "").strip(),
            action=dial.get("action"),
            status_callback=conference.get("statusCallback"),
            status_callback_event=conference.get("statusCallbackEvent", ""),
            label=conference.get("participantLabel"),
            end_conference_on_exit=conference.get("endConferenceOnExit") == "true",
        )
        try:
            leg, adviser = await self._adviser_rings(call, offer)
            holding = self.busy.get(adviser)
            if holding is not None:
                self.violations.append(f"{adviser} rang for {call.sid} while on {holding}")
            self.busy[adviser] = call.sid
            await asyncio.sleep(self.rng.uniform(*self.args.ring))
            self.stub.answer(leg)
            await self._deliver(call, offer, until=None)
            call.answered += 1
            call.adviser = adviser
            await asyncio.sleep(self.rng.uniform(*self.args.talk))
            self.busy.pop(adviser, None)
            self.stub.hang_up_caller(leg)  # the adviser puts the phone down
            done = await self._deliver(call, offer, until="/twilio/dial-result")
            assert done is not None
            survey = done.find("Gather")
            if survey is not None:
                mark = str(self.rng.randint(1, 10))
                done = await self.post("survey", call, survey.get("action", ""), {"Digits": mark})
            expect(done, "Hangup", "goodbye")
            status = {"CallStatus": "completed", "CallDuration": "42"}
            await self.post("status", call, f"{self.apps.public_url}/twilio/status", status)
            call.outcome = "answered"
        finally:
            self.stub.conferences.by_sid.pop(joined.sid, None)  # keeps the stub's scans short
            # Made after the caller's <Dial> action (the conference's end) or left by an error:
            # never posted to the apps; counted, and not kept for the rest of the run.
            for callback in self.stub.take_callbacks(offer):
                self.not_delivered[callback.event] += 1
        return None

    async def _deliver(self, call: Call, offer: str, until: str | None) -> ET.Element | None:
        """Post the offer's callbacks to the apps; with `until`, until one to that path was
        answered (its TwiML), else those waiting now."""
        while True:
            batch = self.stub.take_callbacks(offer) if until is None else []
            if until is not None:
                batch = await self.stub.callbacks(offer)
            for callback in batch:
                route = urlsplit(callback.url).path.removeprefix("/twilio/")
                body = await self.apps.post(route, callback.url, callback.form, callback.signature)
                if until is not None and callback.url.split("?")[0].endswith(until):
                    return self.answers.parse(body)
            if until is None:
                return None

    async def _adviser_rings(self, call: Call, offer: str) -> tuple[str, str]:
        """Deliver callbacks until the adviser's leg is placed: its CallSid and the adviser."""
        while True:
            for callback in await self.stub.callbacks(offer):
                route = urlsplit(callback.url).path.removeprefix("/twilio/")
                await self.apps.post(route, callback.url, callback.form, callback.signature)
                form = callback.form
                if route == "adviser-status" and form.get("CallStatus") == "ringing":
                    return form["CallSid"], form["To"].removeprefix("client:")

    async def arrivals(self, duration: float) -> None:
        """Calls arriving as a Poisson process at --rate for `duration` seconds."""
        start = time.monotonic()
        due = start
        number = 0
        while True:
            due += self.rng.expovariate(self.args.rate)
            if due - start >= duration:
                return
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            number += 1
            task = asyncio.create_task(self.run_call(self.make_call(number)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


# -- measuring -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Snapshot:
    at: float
    generator: float
    apps: list[float]
    redis: float
    postgres: float
    machine: float
    commands: int
    net_in: int
    net_out: int
    commandstats: dict[str, int] = field(default_factory=dict)


def profile(app: App, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """py-spy on the first app while calls arrive (collapsed stacks: one line per stack)."""
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--pid", str(app.proc.pid), "--duration"]
    command += [f"{args.duration:.0f}", "--format", "raw", "--output", str(args.profile)]
    return subprocess.Popen(
        [*command, "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def redis_connections(store: redis.Redis) -> dict[str, int]:
    """The apps' connections to Redis (their clients are named kcc-ivr): all, and those in
    pub/sub mode (a desk stream's own subscription before the one per instance)."""
    apps = [c for c in store.client_list() if c.get("name") == "kcc-ivr"]
    pubsub = [c for c in apps if int(c.get("sub", 0)) + int(c.get("psub", 0)) > 0]
    return {"apps": len(apps), "pubsub": len(pubsub)}


def snapshot(store: redis.Redis, apps: list[App]) -> Snapshot:
    info = store.info("everything")
    return Snapshot(
        at=time.monotonic(),
        generator=cpu_of(os.getpid()),
        apps=[cpu_of(a.proc.pid) for a in apps],
        redis=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        postgres=postgres_cpu(),
        machine=machine_busy(),
        commands=int(info["total_commands_processed"]),
        net_in=int(info["total_net_input_bytes"]),
        net_out=int(info["total_net_output_bytes"]),
        commandstats={
            k.removeprefix("cmdstat_"): int(v["calls"])
            for k, v in info.items()
            if k.startswith("cmdstat_") and isinstance(v, dict)
        },
    )


def cores(a: Snapshot, b: Snapshot) -> dict[str, float]:
    span = b.at - a.at
    used = {
        "generator": b.generator - a.generator,
        **{f"app{i + 1}": y - x for i, (x, y) in enumerate(zip(a.apps, b.apps, strict=True))},
        "redis": b.redis - a.redis,
        "postgres": b.postgres - a.postgres,
    }
    used["other"] = max(0.0, (b.machine - a.machine) - sum(used.values()))
    return {k: round(v / span, 3) for k, v in used.items()}


def redis_rates(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    span = b.at - a.at
    mix = {k: b.commandstats.get(k, 0) - a.commandstats.get(k, 0) for k in b.commandstats}
    return {
        "seconds": round(span, 2),
        "commands": b.commands - a.commands,
        "bytes_in": b.net_in - a.net_in,
        "bytes_out": b.net_out - a.net_out,
        "cpu_seconds": round(b.redis - a.redis, 3),
        "mix": dict(sorted(((k, v) for k, v in mix.items() if v), key=lambda kv: -kv[1])),
    }


def fallbacks(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("kcc_fallbacks_total{")
    )


# -- set-up ----------------------------------------------------------------------------------


def make_desks(database_url: str, count: int, ports: list[int]) -> list[Desk]:
    """`count` adviser accounts (all products), one password hash shared: argon2 once."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            first = create_user(
                session, name="desk0000", role=Role.ADVISER, password=PASSWORD, skills=None
            )
            for i in range(1, count):
                name = f"desk{i:04d}"
                session.add(
                    User(
                        name=name,
                        role=Role.ADVISER,
                        password_hash=first.password_hash,
                        device=default_device(name),
                    )
                )
            session.commit()
            users = session.exec(select(User).order_by(User.name)).all()
            return [
                Desk(
                    u.name,
                    issue_token(
                        subject=u.name,
                        role=Role.ADVISER.value,
                        user_id=int(u.id or 0),
                        version=u.token_version,
                        secret=SECRET_KEY,
                        ttl_seconds=24 * 3600,
                    ),
                    ports[i % len(ports)],
                )
                for i, u in enumerate(users)
            ]
    finally:
        engine.dispose()


async def api(port: int, method: str, path: str, token: str, body: Any = None) -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = json.dumps(body).encode() if body is not None else b""
        writer.write(
            (
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            ).encode()
            + data
        )
        raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    if head[9:12] != b"200":
        raise RuntimeError(f"{method} {path}: {raw[:300]!r}")
    return json.loads(payload) if payload else None


async def set_available(desks: list[Desk]) -> None:
    for i in range(0, len(desks), 25):
        await asyncio.gather(
            *(
                api(d.port, "POST", "/api/advisers/me/status", d.token, {"status": "available"})
                for d in desks[i : i + 25]
            )
        )


# -- the run ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    store = redis.Redis.from_url(args.redis_url, decode_responses=True)
    store.flushdb()
    schema = f"kcc_load_{os.getpid()}"
    admin = make_engine(args.database_url)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    database_url = schema_url(args.database_url, schema)
    Signer(AUTH_TOKEN).check(AUTH_TOKEN)  # the stub's callbacks are signed with it
    sim: Simulation | None = None
    apps: list[App] = []
    try:
        stub = InProcessStub(lambda *a: sim.redirected(*a) if sim else None)
        await stub.serve()
        ports = [free_port() for _ in range(args.instances)]
        env = {
            "KCC_REDIS_URL": args.redis_url,
            "KCC_DATABASE_URL": database_url,
            "KCC_PUBLIC_URL": f"http://127.0.0.1:{ports[0]}",
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "KCC_TWILIO_API_BASE": stub.base_url,
            "KCC_SECRET_KEY": SECRET_KEY,
            "KCC_NOW": OPEN_MOMENT,
            "KCC_WRAP_UP_SECONDS": str(args.wrap_up_seconds),
            "KCC_OFFER_SECONDS": "20",
            "KCC_VERIFY_MIN_SECONDS": str(args.verify_min_seconds),
            # As docker/compose.yaml runs them: INFO lines, no access log (the proxy's job).
            "KCC_LOG_LEVEL": "INFO",
            "KCC_ACCESS_LOG": "false",
        }
        started = time.monotonic()
        engine = make_engine(database_url)
        try:
            upgrade(engine)  # `kcc db upgrade`, as a deployment runs it
            apps = [start_app(f"app{i + 1}", p, env, workdir) for i, p in enumerate(ports)]
            csv_path = workdir / "applications.csv"
            applications = write_applications(
                csv_path, int(args.rate * args.duration * 1.2) + 100, args.seed
            )
            import_applications(  # `kcc applications import`
                csv_path,
                engine=engine,
                hasher=DateOfBirthHasher(SECRET_KEY),
                products=set(PRODUCTS),
                today=date(2026, 11, 28),
            )
        finally:
            engine.dispose()
        desks = make_desks(database_url, args.desks, ports)
        wait_healthy(apps)
        print(f"set up in {time.monotonic() - started:.1f} s", flush=True)
        http = Apps(ports, env["KCC_PUBLIC_URL"])
        sim = Simulation(args, http, stub, applications)
        stop_desks = asyncio.Event()
        desk_tasks = [asyncio.create_task(sim.desk(d, stop_desks)) for d in desks]
        deadline = time.monotonic() + 60
        while sim.desks_ready < len(desks):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {sim.desks_ready} of {len(desks)} desks connected: "
                    f"{dict(sim.desk_errors)}; {[a.errors()[:3] for a in apps]}"
                )
            await asyncio.sleep(0.1)
        await set_available(desks[: args.advisers])
        print(
            f"{len(desks)} desks connected, {args.advisers} available; idle for "
            f"{args.idle:g} s (the desks' own Redis traffic)",
            flush=True,
        )
        idle_from = snapshot(store, apps)
        await asyncio.sleep(args.idle)
        idle_to = snapshot(store, apps)
        connections_idle = redis_connections(store)
        print(f"calls arriving at {args.rate:g}/s for {args.duration:g} s", flush=True)
        before = snapshot(store, apps)
        profiler = profile(apps[0], args) if args.profile else None
        await sim.arrivals(args.duration)
        if profiler is not None:
            profiler.wait()
        arrivals_end = snapshot(store, apps)
        drain_deadline = time.monotonic() + args.drain
        while sim.tasks and time.monotonic() < drain_deadline:
            await asyncio.sleep(0.1)
        after = snapshot(store, apps)
        connections_after = redis_connections(store)
        unfinished = len(sim.tasks)
        for task in list(sim.tasks):
            task.cancel()
        await asyncio.gather(*sim.tasks, return_exceptions=True)
        # Wrap-ups end on the apps' timers; the call records are written in the background.
        placed = len(sim.calls)
        records: list[CallRecord] = []
        engine = make_engine(database_url)
        settle = time.monotonic() + args.wrap_up_seconds + 30
        while time.monotonic() < settle:
            with Session(engine) as session:
                records = list(session.exec(select(CallRecord)).all())
            states = Counter(
                store.hget(keys.adviser(d.name), "state") for d in desks[: args.advisers]
            )
            if len(records) >= placed and set(states) == {"available"}:
                break
            await asyncio.sleep(0.5)
        engine.dispose()
        left = {
            "waiting": sum(int(store.zcard(keys.queue(p))) for p in PRODUCTS),
            "queue_entries": len(list(store.scan_iter(match=keys.queue_entry("*"), count=1000))),
            "advisers_not_available": {str(k): v for k, v in states.items() if k != "available"},
        }
        stop_desks.set()
        for task in desk_tasks:
            task.cancel()
        await asyncio.gather(*desk_tasks, return_exceptions=True)
        metrics_fallbacks = sum(fallbacks(a.port) for a in apps)
        http.close()
        result = report(
            args, sim, records, left, unfinished, metrics_fallbacks, apps,
            (idle_from, idle_to, before, arrivals_end, after),
        )  # fmt: skip
        result["redis_connections"] = {"desks_idle": connections_idle, "after": connections_after}
        print(
            f"Redis connections of the {args.instances} apps (CLIENT LIST) with the desks idle: "
            f"{connections_idle['apps']} ({connections_idle['pubsub']} in pub/sub); after the "
            f"calls: {connections_after['apps']} ({connections_after['pubsub']} in pub/sub)"
        )
        return result
    finally:
        for app in apps:
            stop(app.proc)
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
        store.flushdb()
        store.close()


def report(
    args: argparse.Namespace,
    sim: Simulation,
    records: list[CallRecord],
    left: dict[str, Any],
    unfinished: int,
    metrics_fallbacks: float,
    apps: list[App],
    snaps: tuple[Snapshot, Snapshot, Snapshot, Snapshot, Snapshot],
) -> dict[str, Any]:
    idle_from, idle_to, before, arrivals_end, after = snaps
    calls = sim.calls
    outcomes = Counter(c.outcome or "unfinished" for c in calls)
    by_sid = {r.call_sid: r for r in records}
    lost = [c.sid for c in calls if c.outcome not in ("answered", "abandoned")]
    lost += [c.sid for c in calls if c.outcome in ("answered", "abandoned") and c.sid not in by_sid]
    double = [f"{c.sid} put through {c.answered} times" for c in calls if c.answered > 1]
    double += [f"{c.sid} offered {c.redirects} times" for c in calls if c.redirects > 1]
    double += sim.violations
    # From the database: each adviser answered in the records exactly the calls their phone
    # answered here (the records' times come from two instances' clocks: not compared). A call
    # cut off (by the drain, or an error) after its adviser answered may have its record already
    # (its status callback was in flight): it counts as the adviser's, and as lost above.
    in_records = Counter(r.adviser for r in records if r.adviser)
    answered_here = Counter(
        c.adviser for c in calls if c.adviser and (c.outcome == "answered" or c.sid in by_sid)
    )
    for adviser in sorted(set(in_records) | set(answered_here)):
        if in_records[adviser] != answered_here[adviser]:
            double.append(
                f"{adviser}: {in_records[adviser]} calls in the records, "
                f"{answered_here[adviser]} answered"
            )
    answered_db = sum(1 for r in records if r.adviser)
    mismatched = [
        c.sid for c in calls if c.adviser and c.sid in by_sid and by_sid[c.sid].adviser != c.adviser
    ]
    double += [f"{sid}: the record names another adviser" for sid in mismatched]
    app_errors = [line for a in apps for line in a.errors()]
    errors = sum(sim.errors.values()) + len(app_errors) + int(metrics_fallbacks)
    window = arrivals_end.at - before.at
    answered_in_window = sum(1 for c in calls if c.outcome == "answered")
    routes = {
        route: {
            "requests": len(ms),
            "p50_ms": round(percentile(ms, 0.5), 2),
            "p99_ms": round(percentile(ms, 0.99), 2),
            "max_ms": round(max(ms), 2),
        }
        for route, ms in sorted(sim.apps.latencies.items())
    }
    every = [x for ms in sim.apps.latencies.values() for x in ms]
    offer_ms = [
        (o.desk_at - o.redirect_at) * 1000 for o in sim.offers.values() if o.desk_at is not None
    ]
    offers_unseen = sum(1 for o in sim.offers.values() if o.desk_at is None)
    idle = redis_rates(idle_from, idle_to)
    load = redis_rates(before, after)
    idle_per_s = idle["commands"] / idle["seconds"] if idle["seconds"] else 0.0
    completed = outcomes["answered"] + outcomes["abandoned"]
    not_delivered = sim.not_delivered + Counter(c.event for c in sim.stub.take_callbacks())
    # This process's CPU from the first arrival until the calls have drained, per call placed.
    generator_ms = (after.generator - before.generator) / len(calls) * 1000 if calls else None
    load_commands = load["commands"] - idle_per_s * load["seconds"]
    per_call = {
        "commands": round(load_commands / completed, 1) if completed else None,
        "bytes_in": round(
            (load["bytes_in"] - idle["bytes_in"] / idle["seconds"] * load["seconds"]) / completed
        )
        if completed
        else None,
        "bytes_out": round(
            (load["bytes_out"] - idle["bytes_out"] / idle["seconds"] * load["seconds"]) / completed
        )
        if completed
        else None,
        "redis_cpu_ms": round(
            (load["cpu_seconds"] - idle["cpu_seconds"] / idle["seconds"] * load["seconds"])
            / completed
            * 1000,
            3,
        )
        if completed
        else None,
    }
    result = {
        "placed": len(calls),
        "offered_rate": args.rate,
        "calls_per_s": round(len(calls) / window, 1),
        "answered_per_s": round(answered_in_window / (after.at - before.at), 1),
        "outcomes": dict(outcomes),
        "errors": errors,
        "error_kinds": dict(sim.errors),
        "error_samples": sim.error_samples,
        "app_error_lines": app_errors[:10],
        "app_warnings": {a.name: dict(a.warnings()) for a in apps},
        "fallbacks": metrics_fallbacks,
        "unfinished": unfinished,
        "lost": len(lost),
        "lost_sample": lost[:10],
        "double": len(double),
        "double_sample": double[:10],
        "call_records": len(records),
        "answered_in_records": answered_db,
        "left_in_redis": left,
        "webhook_requests": len(every),
        "webhook_p50_ms": round(percentile(every, 0.5), 2),
        "webhook_p99_ms": round(percentile(every, 0.99), 2),
        "routes": routes,
        "desks": args.desks,
        "offers": len(sim.offers),
        "offers_unseen_by_desk": offers_unseen,
        "offer_to_desk_p50_ms": round(percentile(offer_ms, 0.5), 2),
        "offer_to_desk_p99_ms": round(percentile(offer_ms, 0.99), 2),
        "desk_stream_breaks": dict(sim.desk_errors),
        "callbacks_not_delivered": dict(not_delivered),
        "generator_cpu_ms_per_call": round(generator_ms, 2) if generator_ms is not None else None,
        "cores_during_arrivals": cores(before, arrivals_end),
        "cores_idle_desks": cores(idle_from, idle_to),
        "redis_idle": idle,
        "redis_load": load,
        "redis_per_call": per_call,
    }
    print_report(args, result)
    return result


def print_report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    print(f"\n{'route':<28} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for route, s in r["routes"].items():
        print(
            f"{route:<28} {s['requests']:>9} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}"
            f" {s['max_ms']:>8.2f}"
        )
    print(
        f"{'all webhooks':<28} {r['webhook_requests']:>9} {r['webhook_p50_ms']:>8.2f}"
        f" {r['webhook_p99_ms']:>8.2f}"
    )
    print(
        f"\ncalls: {r['placed']} placed ({r['calls_per_s']}/s offered {args.rate:g}/s), "
        f"outcomes {r['outcomes']}, answered {r['answered_per_s']}/s"
    )
    print(
        f"errors {r['errors']} {r['error_kinds'] or ''}, lost {r['lost']}, "
        f"double-assigned {r['double']}, call records {r['call_records']}, "
        f"left in Redis {r['left_in_redis']}"
    )
    for sample in r["error_samples"] + r["app_error_lines"] + r["double_sample"]:
        print(f"  e.g. {sample[:300]}")
    print(
        f"offer -> desk ({r['desks']} desks, {r['offers']} offers, "
        f"{r['offers_unseen_by_desk']} unseen): p50 {r['offer_to_desk_p50_ms']} ms, "
        f"p99 {r['offer_to_desk_p99_ms']} ms; stream breaks {r['desk_stream_breaks']}"
    )
    print(f"cores while calls arrived: {r['cores_during_arrivals']}")
    print(f"cores with the desks idle: {r['cores_idle_desks']}")
    print(
        f"generator (this process, the Twilio stub in it): {r['generator_cpu_ms_per_call']} ms "
        f"CPU per call placed, arrivals to drained; Twilio callbacks not posted to the apps "
        f"(after the caller's <Dial> action): {r['callbacks_not_delivered']}"
    )
    pc = r["redis_per_call"]
    print(
        f"Redis per call (less the idle desks' traffic): {pc['commands']} commands, "
        f"{pc['bytes_in']} bytes in, {pc['bytes_out']} bytes out, {pc['redis_cpu_ms']} ms CPU"
    )
    top = list(r["redis_load"]["mix"].items())[:12]
    print("Redis command mix under load: " + ", ".join(f"{k} {v}" for k, v in top))
    print(
        f"\ntargets: {TARGET_CALLS_PER_S:g} calls/s: {ok(r['calls_per_s'] >= TARGET_CALLS_PER_S)}"
        f"; webhook p99 <= {TARGET_WEBHOOK_P99_MS:g} ms: "
        f"{ok(r['webhook_p99_ms'] <= TARGET_WEBHOOK_P99_MS)}; offer p99 <= "
        f"{TARGET_OFFER_P99_MS:g} ms: {ok(r['offer_to_desk_p99_ms'] <= TARGET_OFFER_P99_MS)}; "
        f"zero errors/lost/double: {ok(not (r['errors'] or r['lost'] or r['double']))}"
    )


def ok(met: bool) -> str:
    return "met" if met else "MISSED"


def pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Load test of the whole call path.")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals")
    parser.add_argument("--rate", type=float, default=20.0, help="new calls per second (Poisson)")
    parser.add_argument("--advisers", type=int, default=300, help="desks available for calls")
    parser.add_argument("--desks", type=int, default=500, help="desks with an event stream")
    parser.add_argument("--instances", type=int, default=2, help="kcc serve processes")
    parser.add_argument("--talk", type=pair, default=(0.2, 0.8), help="talk seconds: LOW,HIGH")
    parser.add_argument("--ring", type=pair, default=(0.05, 0.2), help="ring seconds: LOW,HIGH")
    parser.add_argument("--wrap-up-seconds", type=int, default=1, help="KCC_WRAP_UP_SECONDS")
    parser.add_argument(
        "--verify-min-seconds",
        type=float,
        default=0.0,
        help="KCC_VERIFY_MIN_SECONDS (production pads the identity check to 0.4 s: a sleep)",
    )
    parser.add_argument("--abandon-share", type=float, default=0.05, help="callers who give up")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle desks first")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds for calls to end")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7", help="flushed!")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/kcc_load",
        help="PostgreSQL database; the bench works in a schema of its own there",
    )
    parser.add_argument("--json-out", type=Path)
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy (pip install py-spy) on app1 while calls arrive: collapsed stacks to FILE",
    )
    args = parser.parse_args(argv)
    if args.desks < args.advisers or args.advisers < 1 or args.rate <= 0:
        parser.error("need 1 <= --advisers <= --desks and a positive --rate")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"kcc-ivr load test: {args.rate:g} calls/s for {args.duration:g} s, "
        f"{args.instances} instances, {args.desks} desks ({args.advisers} available), "
        f"load average before {' '.join(loadavg)}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="kcc-load-") as tmp:
        result = uvloop.run(run(args, Path(tmp)))
    ok = not (result["errors"] or result["lost"] or result["double"])
    if args.json_out:
        document = {
            "command": " ".join(["python", "-m", "bench.load", *(argv or sys.argv[1:])]),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": machine(),
            "load_average_before": loadavg,
            "source": source_info(ROOT),
            "result": result,
            "ok": ok,
        }
        args.json_out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
