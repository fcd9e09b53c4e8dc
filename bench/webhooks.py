"""Webhook benchmark: the full caller path against a bare FastAPI endpoint, as in production.

    .venv/bin/python -m bench.webhooks                 # 32 connections, 3 rounds of 10 s
    .venv/bin/python -m bench.webhooks --duration 1 --warmup 0 --rounds 1   # smoke run
    .venv/bin/python -m bench.webhooks --source DIR    # also kcc from DIR, compared with kcc

Starts uvicorn servers (one worker each, uvloop + httptools, no access log) on free loopback
ports:

* bare: bench/bare_app.py, with two constant-TwiML endpoints: POST /twilio/voice parses the form
  first (the "bare" baseline), POST /twilio/floor does not (the "floor": the stack's own limit);
* kcc:  api.asgi:app, with signatures checked, a dedicated database of the real Redis (flushed
  before every kcc phase), a SQLite file in a temporary folder and the clock pinned to a
  moment the contact centre is open;
* one more kcc server per `--source [NAME=]DIR` (default name kcc-old), the same app run from
  another source tree (`git archive REV | tar -x -C DIR`), with a SQLite file of its own.

Two workloads (`--workload calls|new-call|both`, default both):

* calls: kcc places whole calls (below), compared with bare;
* new-call: kcc gets only the first webhook of a call, POST /twilio/voice with a fresh CallSid,
  compared with the floor.

A load generator (asyncio on uvloop, raw HTTP/1.1 keep-alive connections, optionally split over
several processes) keeps `--concurrency` connections busy, closed loop: every connection sends
its next request as soon as the previous answer is in. Against kcc each connection places
complete calls one after another, as Twilio would send them:

    POST /twilio/voice                     -> <Gather action=".../twilio/step?seq=1...">
    POST <action>  Digits=1                -> <Gather> of the VOG NP submenu (seq=2)
    POST <action>  Digits=2                -> <Enqueue>kcc-vog_np</Enqueue>, or first
    POST <action>  Digits= (# alone)       -> for each question the flow asks before the queue
                                              (the optional application number): skipped
    POST /twilio/status CallStatus=completed -> <Response/>

every request signed with X-Twilio-Signature over KCC_PUBLIC_URL and the form parameters.
Against bare (and the floor) each connection posts the same kind of signed form.

Phases run interleaved (every round: bare, kcc, kcc-old, ...; then floor, kcc, kcc-old, ...;
the kcc servers take turns at going first) so that all servers see the same noise of a shared
machine; the figures reported are the medians over the rounds, with the ratios of kcc to the
baseline and of kcc to each --source server, and the spread of those ratios over the rounds
(each round's pair). The CPU of the worker per request is reported too. Any non-200 answer,
invalid XML, unexpected TwiML, apology fallback or error in the kcc server log fails the run
(exit code 1). The CPU used by the load generator, each server, Redis and everything else on
the machine is printed for every phase, so a noisy run can be recognised.

Other options: --rate N for an open loop (N requests/s offered, latency counted from when a
request was due); --only bare|kcc; --profile FILE (py-spy on the kcc worker; --profile-gil for
the samples that hold the GIL only); --kcc-app another ASGI app (e.g. a changed copy of
api.asgi); --kcc-source DIR to run the kcc server itself from a snapshot, so that edits in
progress do not change what is measured; --database-url for PostgreSQL instead of the SQLite
files (shared by all kcc servers then). See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import math
import multiprocessing
import os
import platform
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from array import array
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import redis
import uvloop
from twilio.request_validator import RequestValidator

from api.settings import PLACEHOLDER_AUTH_TOKEN

ROOT = Path(__file__).resolve().parent.parent
# The settings' placeholder token: signatures are checked over it as over any, and it keeps the
# telephony simulated, so the recovery that a flushed Redis sets off (routing/recovery.py) asks
# no Twilio on the internet for its queue members.
AUTH_TOKEN = PLACEHOLDER_AUTH_TOKEN
SECRET_KEY = "bench-secret-key-" + "0123456789abcdef" * 3
OPEN_MOMENT = "2026-12-01T10:00:00+01:00"  # a Tuesday morning: the contact centre is open
EXPECTED_QUEUE = "kcc-vog_np"  # main menu 1 (VOG NP), submenu 2 (procedure)
TARGET_RATIO = 0.5
TARGET_P99_MS = 20.0
KCC_ROUTES = ("voice", "menu", "submenu", "skip", "status")
# What kcc is asked, and the baseline (a route of bench/bare_app.py) it is compared against:
# whole calls against an endpoint that reads the form; the new-call webhook alone against one
# that does not (the stack's own limit).
BASELINES = {"calls": "bare", "new-call": "floor"}
# Questions the flow may ask between the submenu and the queue (since the identity check: "your
# application number, then #"), each answered with "#" alone, which Twilio posts as empty Digits.
MAX_SKIPS = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")
LATE_NS = 2_000_000  # open loop: a request this late was held up by the one before it

BASE_PARAMS = {
    "AccountSid": "AC" + "0" * 32,
    "From": "+31612345678",
    "Caller": "+31612345678",
    "To": "+31703704900",
    "Direction": "inbound",
    "ApiVersion": "2010-04-01",
}


# -- servers -------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process, from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    name: str, target: str, env: dict[str, str], logdir: Path, source: Path = ROOT
) -> Server:
    """A uvicorn server of `target` from `source`; a kcc one (any but the baseline) gets its
    KCC_PUBLIC_URL, since signatures are checked over it."""
    port = free_port()
    log = logdir / f"{name}.log"
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--no-proxy-headers",  # as `kcc serve`: signatures use KCC_PUBLIC_URL, not X-Forwarded-*
        "--log-level",
        "warning",
        "--app-dir",
        str(source),
    ]
    # `source` first, so that a snapshot of the code wins over the editable install; ROOT for
    # the bench's own modules (bare_app).
    path = [str(source), str(ROOT), os.environ.get("PYTHONPATH", "")]
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    if name != "bare":
        full_env["KCC_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=source, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    return Server(name, port, proc, log)


def wait_healthy(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} server exited:\n{server.log_tail()}")
        with (
            suppress(OSError),
            urllib.request.urlopen(f"{server.base}/healthz", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} server not healthy after {timeout} s:\n{server.log_tail()}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@contextmanager
def servers(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[Server, list[Server]]]:
    """The bare server (both baselines) and the kcc servers: "kcc" from `--kcc-source`, then
    one per `--source`, each with a SQLite file of its own (their schemas may differ)."""
    started: list[Server] = []
    try:
        started.append(start_server("bare", "bench.bare_app:app", {}, workdir))
        for name, source in [("kcc", args.kcc_source), *args.source]:
            kcc_env = {
                "KCC_REDIS_URL": args.redis_url,
                "KCC_DATABASE_URL": args.database_url or f"sqlite:///{workdir}/{name}.sqlite3",
                "KCC_SECRET_KEY": SECRET_KEY,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "KCC_NOW": OPEN_MOMENT,
                "KCC_LOG_LEVEL": "WARNING",
            }
            started.append(start_server(name, args.kcc_app, kcc_env, workdir, source))
        for server in started:
            wait_healthy(server)
        yield started[0], started[1:]
    finally:
        for server in started:
            stop_server(server)


# -- load generator (runs in client processes) ----------------------------------------------


class BadAnswer(Exception):
    """A response that is not what a working server answers; counted by `kind`."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


@dataclass
class ClientJob:
    kind: str  # "bare" or "floor" (a baseline), "calls" or "new-call" (kcc)
    port: int
    connections: int
    budget: int  # at most this many requests in all (a kcc call is 4)
    interval_ns: int  # 0: closed loop; else each connection sends one request per interval
    start_ns: int  # perf_counter_ns (CLOCK_MONOTONIC, shared by all processes on Linux)
    warm_end_ns: int
    end_ns: int


@dataclass
class ClientResult:
    latencies: dict[str, bytes] = field(default_factory=dict)  # route -> array('q') of ns
    requests: int = 0  # all requests, warm-up included
    calls: int = 0  # complete kcc calls, warm-up included
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    last_end_ns: int = 0
    cpu_seconds: float = 0.0  # of this client process, during the measured window


class Signer:
    """Twilio's request signature, as RequestValidator.compute_signature makes it, but cheaper.

    HMAC-SHA1 over the URL followed by every parameter name and value, sorted by name (one
    value per name here). `check` proves it equal to the twilio library's before a run; the
    server checks every request with the library anyway, so a wrong signature fails the run.
    """

    def __init__(self, token: str) -> None:
        self._key = token.encode()

    def sign(self, url: str, params: dict[str, str]) -> str:
        data = url + "".join(name + params[name] for name in sorted(params))
        return base64.b64encode(hmac.new(self._key, data.encode(), hashlib.sha1).digest()).decode()

    def check(self, token: str) -> None:
        url = "https://ivr.example.nl/twilio/step?seq=1&lang=nl"
        params = {**BASE_PARAMS, "CallSid": "CA" + "0" * 32, "Digits": "1"}
        if self.sign(url, params) != RequestValidator(token).compute_signature(url, params):
            raise AssertionError("bench Signer disagrees with twilio's RequestValidator")


_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_ENCODED: dict[tuple[str, str], str] = {}


def form_body(params: dict[str, str]) -> bytes:
    """application/x-www-form-urlencoded, as urlencode() makes it; constant pairs cached."""
    parts = []
    for name, value in params.items():
        if _SAFE.issuperset(value):  # names are plain words; sids, digits, statuses too
            parts.append(f"{name}={value}")
            continue
        pair = _ENCODED.get((name, value))
        if pair is None:  # only the few constant values (phone numbers) need quoting
            pair = _ENCODED[name, value] = f"{quote_plus(name)}={quote_plus(value)}"
        parts.append(pair)
    return "&".join(parts).encode()


class Connection:
    """One keep-alive HTTP/1.1 connection that posts signed Twilio forms."""

    def __init__(self, port: int, signer: Signer) -> None:
        self.port = port
        self.public = f"http://127.0.0.1:{port}"
        self.host_header = f"127.0.0.1:{port}".encode()
        self.signer = signer
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.next_due = 0  # open loop: when the next request is due (perf_counter_ns)

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    def request(self, url: str, params: dict[str, str], signature: str | None = None) -> bytes:
        """The bytes of a POST as Twilio sends it: form body, signature over URL + params (made
        here unless given: a callback signed once where it was made)."""
        if signature is None:
            signature = self.signer.sign(url, params)
        body = form_body(params)
        path = url[len(self.public) :]
        return b"".join(
            (
                b"POST ",
                path.encode(),
                b" HTTP/1.1\r\nHost: ",
                self.host_header,
                b"\r\nUser-Agent: TwilioProxy/1.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: ",
                signature.encode(),
                b"\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )

    async def post(self, data: bytes) -> bytes:
        """Send one request and return the body of a 200 answer; BadAnswer otherwise."""
        if self.reader is None or self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head[9:12]
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            raise BadAnswer("no-content-length", head[:200].decode(errors="replace"))
        stop = lower.index(b"\r\n", at + 2)
        length = int(lower[at + 17 : stop])
        body = await self.reader.readexactly(length) if length else b""
        if status != b"200":
            raise BadAnswer(f"http-{status.decode(errors='replace')}", body[:200].decode())
        if b"\r\nconnection: close" in lower:
            self.close()
        return body


def twiml(body: bytes) -> ET.Element:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise BadAnswer("invalid-xml", f"{exc}: {body[:200]!r}") from None
    if root.tag != "Response":
        raise BadAnswer("not-twiml", repr(body[:200]))
    return root


def gather_action(root: ET.Element, step: str) -> str:
    gather = root.find("Gather")
    action = gather.get("action") if gather is not None else None
    if not action:
        raise BadAnswer(f"{step}-no-gather", ET.tostring(root, encoding="unicode")[:300])
    return action


class LoadClient:
    def __init__(self, job: ClientJob) -> None:
        self.job = job
        self.signer = Signer(AUTH_TOKEN)
        self.result = ClientResult()
        routes = KCC_ROUTES if job.kind == "calls" else ("voice",)
        self.latencies = {route: array("q") for route in routes}
        self.budget = job.budget

    def _error(self, exc: BaseException) -> None:
        kind = exc.kind if isinstance(exc, BadAnswer) else type(exc).__name__
        self.result.errors[kind] += 1
        if len(self.result.error_samples) < 5:
            self.result.error_samples.append(f"{kind}: {exc}"[:400])

    async def _timed(self, conn: Connection, route: str, url: str, params: dict[str, str]) -> bytes:
        data = conn.request(url, params)
        started = time.perf_counter_ns()
        if self.job.interval_ns:  # open loop: keep to the connection's schedule
            due = conn.next_due
            conn.next_due += self.job.interval_ns
            if due > started:
                await asyncio.sleep((due - started) / 1e9)
                started = time.perf_counter_ns()
            elif started - due > LATE_NS:
                started = due  # behind schedule: the wait counts (no coordinated omission)
        body = await conn.post(data)
        finished = time.perf_counter_ns()
        self.result.requests += 1
        if started >= self.job.warm_end_ns and started < self.job.end_ns:
            self.latencies[route].append(finished - started)
        self.result.last_end_ns = max(self.result.last_end_ns, finished)
        return body

    def _go_on(self, cost: int) -> bool:
        if time.perf_counter_ns() >= self.job.end_ns or self.budget < cost:
            return False
        self.budget -= cost
        return True

    async def _bare_loop(self, conn: Connection) -> None:
        """A fresh call's form to a baseline: /twilio/voice (bare) or /twilio/floor."""
        url = f"{conn.public}/twilio/{'floor' if self.job.kind == 'floor' else 'voice'}"
        while self._go_on(1):
            params = {"CallSid": "CA" + secrets.token_hex(16), **BASE_PARAMS}
            params["CallStatus"] = "ringing"
            try:
                twiml(await self._timed(conn, "voice", url, params))
            except (BadAnswer, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self._error(exc)
                conn.close()

    async def _new_call_loop(self, conn: Connection) -> None:
        """Only the first webhook of a call, each with a fresh CallSid, signed."""
        url = f"{conn.public}/twilio/voice"
        while self._go_on(1):
            params = {"CallSid": "CA" + secrets.token_hex(16), **BASE_PARAMS}
            params["CallStatus"] = "ringing"
            try:
                action = gather_action(
                    twiml(await self._timed(conn, "voice", url, params)), "voice"
                )
                if "seq=1" not in action:
                    raise BadAnswer("voice-wrong-seq", action)
            except (BadAnswer, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self._error(exc)
                conn.close()

    async def _kcc_call(self, conn: Connection) -> None:
        params = {"CallSid": "CA" + secrets.token_hex(16), **BASE_PARAMS}
        params["CallStatus"] = "ringing"
        answer = twiml(await self._timed(conn, "voice", f"{conn.public}/twilio/voice", params))
        params["CallStatus"] = "in-progress"
        url = gather_action(answer, "voice")
        if "seq=1" not in url:
            raise BadAnswer("voice-wrong-seq", url)
        answer = twiml(await self._timed(conn, "menu", url, {**params, "Digits": "1"}))
        url = gather_action(answer, "menu")
        if "seq=2" not in url:
            raise BadAnswer("menu-wrong-seq", url)
        answer = twiml(await self._timed(conn, "submenu", url, {**params, "Digits": "2"}))
        for _ in range(MAX_SKIPS):  # optional questions before the queue (application number)
            if answer.find("Enqueue") is not None or answer.find("Gather") is None:
                break
            url = gather_action(answer, "skip")
            answer = twiml(await self._timed(conn, "skip", url, {**params, "Digits": ""}))
        enqueue = answer.find("Enqueue")
        if enqueue is None or enqueue.text != EXPECTED_QUEUE:
            raise BadAnswer("submenu-not-queued", ET.tostring(answer, encoding="unicode")[:300])
        params.update(CallStatus="completed", CallDuration="42")
        answer = twiml(await self._timed(conn, "status", f"{conn.public}/twilio/status", params))
        if len(answer):
            raise BadAnswer("status-not-empty", ET.tostring(answer, encoding="unicode")[:300])
        self.result.calls += 1

    async def _kcc_loop(self, conn: Connection) -> None:
        while self._go_on(len(KCC_ROUTES)):
            try:
                await self._kcc_call(conn)
            except (BadAnswer, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self._error(exc)
                conn.close()

    async def run(self) -> ClientResult:
        job = self.job
        conns = [Connection(job.port, self.signer) for _ in range(job.connections)]
        for i, conn in enumerate(conns):  # spread the open-loop schedules over one interval
            conn.next_due = job.start_ns + job.interval_ns * i // max(1, job.connections)
        await asyncio.sleep(max(0, job.start_ns - time.perf_counter_ns()) / 1e9)
        await asyncio.gather(*(conn.open() for conn in conns))
        loops = {"calls": self._kcc_loop, "new-call": self._new_call_loop}
        loop = loops.get(job.kind, self._bare_loop)
        sampler = asyncio.create_task(self._sample_cpu())
        limit = (job.end_ns - time.perf_counter_ns()) / 1e9 + 30
        try:
            await asyncio.wait_for(asyncio.gather(*(loop(conn) for conn in conns)), limit)
        except TimeoutError:
            self.result.errors["client-timeout"] += 1
        finally:
            for conn in conns:
                conn.close()
        await sampler
        self.result.latencies = {k: v.tobytes() for k, v in self.latencies.items()}
        return self.result

    async def _sample_cpu(self) -> None:
        await asyncio.sleep(max(0, self.job.warm_end_ns - time.perf_counter_ns()) / 1e9)
        cpu_start = time.process_time()
        await asyncio.sleep(max(0, self.job.end_ns - time.perf_counter_ns()) / 1e9)
        self.result.cpu_seconds = time.process_time() - cpu_start


def run_client(job: ClientJob) -> ClientResult:
    return uvloop.run(LoadClient(job).run())


# -- one phase -------------------------------------------------------------------------------


@dataclass
class Stats:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


def percentile(ordered: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in milliseconds."""
    if not ordered:
        return math.nan
    rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[rank] / 1e6


def stats(latencies: list[int], seconds: float) -> Stats:
    ordered = sorted(latencies)
    return Stats(
        requests=len(ordered),
        rps=len(ordered) / seconds if seconds > 0 else math.nan,
        p50_ms=percentile(ordered, 0.50),
        p99_ms=percentile(ordered, 0.99),
        p999_ms=percentile(ordered, 0.999),
        max_ms=ordered[-1] / 1e6 if ordered else math.nan,
    )


@dataclass
class Phase:
    target: str  # the side measured: "bare" or "floor" (baselines), "kcc" or a --source name
    workload: str  # "calls" or "new-call"
    round: int
    seconds: float
    overall: Stats
    routes: dict[str, Stats]
    calls_per_s: float
    errors: dict[str, int]
    error_samples: list[str]
    client_cpu: float  # cores used by the load generator (1.0 = one core busy)
    server_cpu: float  # cores used by the uvicorn worker
    server_cpu_ms: float  # the worker's CPU per request answered, in milliseconds
    redis_cpu: float  # cores used by redis-server (all its clients)
    other_cpu: float  # cores used by everything else on the machine (noise)


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores, all processes), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def redis_cpu_seconds(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run_phase(
    server: Server,
    side: str,
    workload: str,
    args: argparse.Namespace,
    round_no: int,
    pool: ProcessPoolExecutor,
    redis_client: redis.Redis,
) -> Phase:
    procs = max(1, min(args.client_procs, args.concurrency))
    shares = [args.concurrency // procs + (i < args.concurrency % procs) for i in range(procs)]
    budget = args.calls * len(KCC_ROUTES)
    start = time.perf_counter_ns() + 300_000_000  # time for the client processes to come up
    warm_end = start + int(args.warmup * 1e9)
    end = warm_end + int(args.duration * 1e9)
    # open loop: each connection sends one request per interval, `--rate` in all
    interval = int(args.concurrency / args.rate * 1e9) if args.rate else 0
    kind = side if side in BASELINES.values() else workload
    jobs = [
        ClientJob(kind, server.port, n, budget // procs, interval, start, warm_end, end)
        for n in shares
    ]
    futures = [pool.submit(run_client, job) for job in jobs]

    time.sleep(max(0, warm_end - time.perf_counter_ns()) / 1e9)
    server_cpu0, redis_cpu0 = server.cpu_seconds(), redis_cpu_seconds(redis_client)
    busy0, wall0 = machine_busy_seconds(), time.perf_counter_ns()
    time.sleep(max(0, end - time.perf_counter_ns()) / 1e9)
    server_cpu1, redis_cpu1 = server.cpu_seconds(), redis_cpu_seconds(redis_client)
    busy1 = machine_busy_seconds()
    wall = max(1e-9, (time.perf_counter_ns() - wall0) / 1e9)

    results = [future.result() for future in futures]
    window_end = min(end, max(r.last_end_ns for r in results))
    seconds = max(1e-9, (window_end - warm_end) / 1e9)
    per_route: dict[str, list[int]] = {}
    for result in results:
        for route, raw in result.latencies.items():
            values = array("q")
            values.frombytes(raw)
            per_route.setdefault(route, []).extend(values)
    everything = [value for values in per_route.values() for value in values]
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result.errors)
    calls_measured = len(per_route.get("status", []))
    client_cpu = sum(r.cpu_seconds for r in results) / seconds
    server_cpu = (server_cpu1 - server_cpu0) / wall
    redis_cpu = (redis_cpu1 - redis_cpu0) / wall
    overall = stats(everything, seconds)
    return Phase(
        target=side,
        workload=workload,
        round=round_no,
        seconds=seconds,
        overall=overall,
        routes={route: stats(values, seconds) for route, values in per_route.items() if values},
        calls_per_s=calls_measured / seconds if kind == "calls" else 0.0,
        errors=dict(errors),
        error_samples=[s for r in results for s in r.error_samples][:5],
        client_cpu=client_cpu,
        server_cpu=server_cpu,
        server_cpu_ms=server_cpu / overall.rps * 1000 if overall.rps else math.nan,
        redis_cpu=redis_cpu,
        other_cpu=max(0.0, (busy1 - busy0) / wall - client_cpu - server_cpu - redis_cpu),
    )


def start_profiler(server: Server, args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """py-spy on the kcc worker, over warm-up and measured window of one phase."""
    if args.profile is None or server.name != "kcc":
        return None
    formats = {".svg": "flamegraph", ".json": "speedscope"}
    cmd = [
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--pid",
        str(server.proc.pid),
        "--duration",
        str(max(1, round(args.warmup + args.duration))),
        "--rate",
        "250",
        *(["--gil"] if args.profile_gil else []),
        "--format",
        formats.get(args.profile.suffix, "raw"),
        "--output",
        str(args.profile),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


# -- checks on the kcc server after the run ---------------------------------------------------


def metric_total(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in "{ "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def server_problems(server: Server) -> list[str]:
    """Apologies answered and errors logged by the kcc server: each one fails the run."""
    problems = []
    with urllib.request.urlopen(f"{server.base}/metrics", timeout=5) as response:
        text = response.read().decode()
    fallbacks = metric_total(text, "kcc_fallbacks_total")
    if fallbacks:
        problems.append(
            f"{server.name} answered {fallbacks:.0f} webhook(s) with the apology fallback"
        )
    log = server.log.read_text(errors="replace").splitlines()
    bad = [line for line in log if re.search(r'"level": "(error|critical)"|Traceback', line)]
    if bad:
        problems.append(f"{server.name} logged {len(bad)} error line(s); first: {bad[0][:300]}")
    return problems


# -- report --------------------------------------------------------------------------------


def median_stats(phases: list[Phase]) -> Stats:
    def med(attr: str) -> float:
        return float(statistics.median(getattr(p.overall, attr) for p in phases))

    return Stats(
        requests=int(med("requests")),
        rps=med("rps"),
        p50_ms=med("p50_ms"),
        p99_ms=med("p99_ms"),
        p999_ms=med("p999_ms"),
        max_ms=med("max_ms"),
    )


def row(label: str, s: Stats, cpu_ms: float | None = None, extra: str = "") -> str:
    cpu = f"{cpu_ms:>8.3f}" if cpu_ms is not None else f"{'':>8}"
    return (
        f"{label:<26} {s.requests:>9} {s.rps:>9.0f} {s.p50_ms:>8.2f} {s.p99_ms:>8.2f}"
        f" {s.p999_ms:>8.2f} {s.max_ms:>8.2f} {cpu}  {extra}"
    ).rstrip()


def ratio_of(a: float, b: float) -> float:
    return a / b if b else math.nan


def compare(phases: list[Phase], side: str, other: str) -> dict[str, Any]:
    """`side` against `other`: the ratio of their median req/s, of their median CPU per request,
    and the req/s ratios of the rounds (paired: the same round of each), whose spread is the
    noise of this run."""
    mine = [p for p in phases if p.target == side]
    theirs = {p.round: p for p in phases if p.target == other}
    rounds = [
        ratio_of(p.overall.rps, theirs[p.round].overall.rps) for p in mine if p.round in theirs
    ]
    return {
        "rps": ratio_of(median_stats(mine).rps, median_stats(list(theirs.values())).rps),
        "server_cpu_ms": ratio_of(
            statistics.median(p.server_cpu_ms for p in mine),
            statistics.median(p.server_cpu_ms for p in theirs.values()),
        ),
        "rounds": rounds,
    }


def workload_report(phases: list[Phase], workload: str) -> dict[str, Any]:
    """Medians of each side of one workload and the ratios: every kcc side against the
    workload's baseline, and "kcc" against each --source side."""
    sides = list(dict.fromkeys(p.target for p in phases))
    medians = {side: median_stats([p for p in phases if p.target == side]) for side in sides}
    cpu_ms = {
        side: statistics.median(p.server_cpu_ms for p in phases if p.target == side)
        for side in sides
    }
    for side, s in medians.items():
        rounds = len([p for p in phases if p.target == side])
        print(row(f"{side} median of {rounds}", s, cpu_ms[side]))
    baseline = BASELINES[workload]
    pairs = [(side, baseline) for side in sides if side != baseline and baseline in sides]
    if "kcc" in sides:
        pairs += [("kcc", side) for side in sides if side not in ("kcc", baseline)]
    ratios = {f"{a}/{b}": compare(phases, a, b) for a, b in pairs}
    for name, r in ratios.items():
        spread = "–".join(f"{f(r['rounds']):.3f}" for f in (min, max)) if r["rounds"] else "-"
        print(
            f"ratio {name + ':':<26} req/s {r['rps']:.3f} (rounds {spread}), "
            f"CPU per request {r['server_cpu_ms']:.3f}"
        )
    return {
        "sides": {
            side: {**asdict(s), "server_cpu_ms": cpu_ms[side]} for side, s in medians.items()
        },
        "ratios": ratios,
    }


def print_report(phases: list[Phase], args: argparse.Namespace) -> dict[str, Any]:
    header = (
        f"{'phase':<26} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'p99.9 ms':>8} {'max ms':>8} {'cpu ms':>8}  cores: client/server/redis/other"
    )
    summary: dict[str, Any] = {}
    for workload in BASELINES:
        of_workload = [p for p in phases if p.workload == workload]
        if not of_workload:
            continue
        print(f"\nworkload {workload} (cpu ms: the server's CPU per request)")
        print(header)
        print("-" * len(header))
        for phase in of_workload:
            cpu = "/".join(
                f"{c:.2f}"
                for c in (phase.client_cpu, phase.server_cpu, phase.redis_cpu, phase.other_cpu)
            )
            print(
                row(f"{phase.target} round {phase.round}", phase.overall, phase.server_cpu_ms, cpu)
            )
            if phase.workload == "calls" and phase.target not in BASELINES.values():
                for route, s in phase.routes.items():
                    if s.requests:
                        print(row(f"  {route}", s))
                print(f"{'  calls/s':<26} {'':>9} {phase.calls_per_s:>9.0f}")
        print("-" * len(header))
        summary[workload] = workload_report(of_workload, workload)
    noisy = [p for p in phases if p.other_cpu > 0.25]
    if noisy:
        print(
            f"warning: other processes used > 0.25 cores in {len(noisy)} of {len(phases)} "
            "phases (see the 'other' column); the figures are skewed by that noise"
        )
    sides = summary.get("calls", {}).get("sides", {})
    if "bare" not in sides or "kcc" not in sides:
        return summary
    # The whole call's targets, also at the top level of the JSON as before the workloads.
    bare, kcc = Stats(**_stats_only(sides["bare"])), Stats(**_stats_only(sides["kcc"]))
    ratio = kcc.rps / bare.rps if bare.rps else math.nan
    ratio_ok = ratio >= TARGET_RATIO
    p99_ok = kcc.p99_ms <= TARGET_P99_MS
    print()
    if args.rate:
        print(f"open loop at {args.rate:g} req/s offered: the req/s ratio says nothing here")
    else:
        print(f"ratio kcc/bare req/s: {ratio:.2f}  (target >= {TARGET_RATIO}: {_yes(ratio_ok)})")
    print(f"kcc p99: {kcc.p99_ms:.2f} ms  (target <= {TARGET_P99_MS:.0f} ms: {_yes(p99_ok)})")
    machine_too_slow = bare.p99_ms > TARGET_P99_MS
    if machine_too_slow:
        # In a closed loop the latency is the connections over the throughput: when a constant
        # answer cannot be given within the target, no app on this machine can be right now.
        print(
            f"note: the bare endpoint's own p99 is {bare.p99_ms:.2f} ms, over the p99 target: "
            "this machine is too slow at the moment for the absolute target to be reachable"
        )
    loop = f"open loop, {args.rate:g} req/s offered" if args.rate else "closed loop"
    print(f"at {args.concurrency} connections ({loop}), one uvicorn worker per server")
    summary["bare"], summary["kcc"] = asdict(bare), asdict(kcc)
    summary["ratio"] = None if args.rate else ratio
    summary["targets"] = {
        "ratio_min": TARGET_RATIO,
        "ratio_met": None if args.rate else ratio_ok,
        "p99_max_ms": TARGET_P99_MS,
        "p99_met": p99_ok,
        "bare_p99_over_target": machine_too_slow,
    }
    return summary


def _stats_only(side: dict[str, Any]) -> dict[str, Any]:
    return {name: side[name] for name in Stats.__dataclass_fields__}


def _yes(ok: bool) -> str:
    return "met" if ok else "MISSED"


def source_info(source: Path) -> dict[str, Any]:
    """Which code the kcc server ran: the commit (and whether edits were on top) or the path."""
    info: dict[str, Any] = {"path": str(source)}
    with suppress(OSError, subprocess.CalledProcessError):
        git = ["git", "-C", str(source)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, check=True)
        status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, check=True)
        info["commit"] = head.stdout.decode().strip()
        info["dirty"] = bool(status.stdout.strip())
    return info


def machine() -> dict[str, Any]:
    model = ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "redis", "twilio"):
        with suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the Twilio caller path against a bare FastAPI endpoint."
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load not measured")
    parser.add_argument(
        "--rounds", type=int, default=3, help="bare/kcc rounds, interleaved; medians reported"
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=1_000_000,
        help="at most this many calls per phase (a bound; bare gets 4x as many requests)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open loop: offer this many requests/s in all, spread over the connections, "
        "latency counted from when each request was due (default 0: closed loop, every "
        "connection sends as soon as it has its answer)",
    )
    parser.add_argument(
        "--client-procs", type=int, default=1, help="load generator processes (default 1)"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument(
        "--database-url",
        help="KCC_DATABASE_URL of the kcc server (default: a SQLite file in a temporary folder)",
    )
    parser.add_argument(
        "--workload",
        choices=("calls", "new-call", "both"),
        default="both",
        help="calls: kcc places whole calls, against the bare endpoint that reads the form; "
        "new-call: kcc gets only POST /twilio/voice of a fresh call, against the floor "
        "endpoint that does not read it; both (default): interleaved in every round",
    )
    parser.add_argument(
        "--kcc-source",
        type=Path,
        default=ROOT,
        help="source tree the kcc server runs from (default: this checkout), e.g. a "
        "`git archive` snapshot, so that edits in progress do not change what is measured",
    )
    parser.add_argument(
        "--source",
        type=source_arg,
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="also run the kcc app from DIR (e.g. `git archive REV | tar -x -C DIR`) as a "
        "server of its own, named NAME (default kcc-old, kcc-old2, ...), interleaved with kcc "
        "in every round and compared with it; repeatable",
    )
    parser.add_argument("--json-out", type=Path, help="write the results here as JSON")
    parser.add_argument(
        "--kcc-app",
        default="api.asgi:app",
        help="ASGI app of the kcc server (default api.asgi:app)",
    )
    parser.add_argument(
        "--only",
        choices=("bare", "kcc"),
        help="measure the baselines only, or the kcc servers only (for profiling)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the kcc worker with py-spy during the first kcc phase "
        "(.svg: flame graph, .json: speedscope, else collapsed stacks); skews the figures",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: only samples that hold the GIL (what limits one worker; the "
        "call-record thread mostly waits in the database without it)",
    )
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0 or args.rounds < 1:
        parser.error("--concurrency, --duration and --rounds must be positive")
    if args.rate < 0:
        parser.error("--rate must be positive (or 0 for a closed loop)")
    names = ["kcc"]
    for i, (name, source) in enumerate(args.source):
        name = name or ("kcc-old" if i == 0 else f"kcc-old{i + 1}")
        if name in names or name in BASELINES.values() or not re.fullmatch(r"[\w.-]+", name):
            parser.error(f"--source: the name {name!r} is taken or not a plain word")
        names.append(name)
        args.source[i] = (name, source)
    return args


def source_arg(text: str) -> tuple[str, Path]:
    """`--source [NAME=]DIR`: the name is filled in by parse_args when not given."""
    name, sep, path = text.partition("=")
    if not sep or not re.fullmatch(r"[\w.-]+", name):  # no name: the whole text is the path
        name, path = "", text
    if not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {path}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Signer(AUTH_TOKEN).check(AUTH_TOKEN)
    assert (
        form_body({**BASE_PARAMS, "Digits": "1"})
        == urlencode({**BASE_PARAMS, "Digits": "1"}).encode()
    )
    redis_client = redis.Redis.from_url(args.redis_url)
    redis_client.ping()
    redis_client.flushdb()
    workloads = list(BASELINES) if args.workload == "both" else [args.workload]
    compared = "".join(f", {name} from {source}" for name, source in args.source)
    print(
        f"kcc-ivr webhook benchmark: {args.concurrency} connections, {args.rounds} round(s) of "
        f"{args.warmup:g} s warm-up + {args.duration:g} s per server and workload "
        f"({', '.join(workloads)}), {args.client_procs} client process(es), "
        + (f"open loop at {args.rate:g} req/s, " if args.rate else "closed loop, ")
        + f"Redis {args.redis_url}, kcc {args.kcc_app} from {args.kcc_source}{compared}",
        flush=True,
    )
    phases: list[Phase] = []
    problems: list[str] = []
    context = multiprocessing.get_context("fork")
    with (
        tempfile.TemporaryDirectory(prefix="kcc-bench-") as tmp,
        servers(args, Path(tmp)) as (bare, kccs),
        ProcessPoolExecutor(max_workers=args.client_procs, mp_context=context) as pool,
    ):
        for round_no in range(1, args.rounds + 1):
            # The kcc servers take turns at going first, so that none is always measured right
            # after the baseline (or always last) in a round.
            turn = (round_no - 1) % len(kccs)
            kcc_order = kccs[turn:] + kccs[:turn]
            for workload in workloads:
                sides = [(BASELINES[workload], bare), *((k.name, k) for k in kcc_order)]
                for side, server in sides:
                    if args.only and (server is bare) != (args.only == "bare"):
                        continue
                    if server is not bare:
                        redis_client.flushdb()
                    first = round_no == 1 and workload == workloads[0]
                    profiler = start_profiler(server, args) if first else None
                    phase = run_phase(server, side, workload, args, round_no, pool, redis_client)
                    if profiler is not None:
                        profiler.wait()
                    phases.append(phase)
                    print(
                        f"  {workload} {side} round {round_no}: {phase.overall.rps:.0f} req/s, "
                        f"p50 {phase.overall.p50_ms:.2f} ms, p99 {phase.overall.p99_ms:.2f} ms, "
                        f"{phase.server_cpu_ms:.3f} ms CPU/request, "
                        f"other load {phase.other_cpu:.2f} cores"
                        + (f", errors {phase.errors}" if phase.errors else ""),
                        flush=True,
                    )
                    if phase.errors:
                        problems.append(
                            f"{workload} {side} round {round_no}: errors {phase.errors}"
                        )
                        problems.extend(f"  e.g. {sample}" for sample in phase.error_samples)
        for kcc in kccs:
            problems.extend(server_problems(kcc))
        for server in (bare, *kccs):
            if server.proc.poll() is not None:
                problems.append(f"{server.name} server died:\n{server.log_tail()}")
    redis_client.flushdb()

    summary = print_report(phases, args)
    if problems:
        print("\nFAILED RUN:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
    if args.json_out:
        config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        config["source"] = {name: str(source) for name, source in args.source}
        document = {
            "command": " ".join([Path(sys.executable).name, "-m", "bench.webhooks", *sys.argv[1:]]),
            "config": config,
            "machine": machine(),
            "source": source_info(args.kcc_source),
            "sources": {name: source_info(source) for name, source in args.source},
            "phases": [asdict(p) for p in phases],
            "summary": summary,
            "problems": problems,
            "ok": not problems,
        }
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as `python bench/webhooks.py`: make `bench` importable
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
