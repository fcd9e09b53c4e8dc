"""Redis client benchmark: our pipelined client against libraries that multiplex by themselves.

    .venv/bin/python -m bench.redis_clients                          # 1, 8, 32 tasks, 3 rounds
    .venv/bin/python -m bench.redis_clients --concurrency 32 --rounds 1 --duration 1   # smoke
    .venv/bin/python -m bench.redis_clients --features               # + what each one can do

Needs the `bench` extra (`pip install -e '.[bench]'`: coredis, valkey-glide, uvloop).

`routing/pipelined_redis.py` exists because redis-py's pool cost ~40 µs of CPU per command. The
project keeps hand-made plumbing only while a maintained library is clearly slower or lacks
something we need, so this measures, in one run, with phases interleaved:

* ours       - PipelinedRedis as api/services.py:make_redis builds it (RESP2, decode_responses,
               socket_timeout 2 s, connect timeout 2 s, health checks every 30 s, a client name);
* redis-py   - redis.asyncio.Redis with its pool, the same settings: the reference;
* coredis    - coredis.Redis (multiplexes commands on a pooled connection); RESP3, since
               coredis 6 cannot speak RESP2; no retries (a Lua script must not run twice);
* glide      - valkey-glide's GlideClient (a Rust core multiplexing one connection), RESP2;
               replies are bytes whatever the settings, so they are decoded here, as the
               service would have to;
* glide-resp3 - the same in RESP3, which glide's pub/sub requires.

The workload is what a call's webhooks send to Redis (ivr/calls.py, ivr/store.py,
routing/queue.py, routing/board.py), with the real Lua bodies run as one chained EVALSHA each
(routing/scripts.py: EVALSHA, and on NOSCRIPT a SCRIPT LOAD and the EVALSHA again):

    incoming   EVALSHA commit of a new call: 4 keys, 7 args (sealed session ~1.5 KB, TwiML ~1 KB)
    menu step  EVALSHA commit: 3 keys, 6 args
               HGET of the session (a step answered by another instance)
    submenu    EVALSHA commit + enqueue (sealed entry ~1 KB) + match: 9 keys, 18 args
               GET of the queue entry (the Enqueue wait URL)
    skip       EVALSHA commit
               EXISTS of the ended marker
    status     EVALSHA end + leave the line + routing state: 8 keys, 4 args

8 commands for 5 webhooks. `--concurrency` tasks (default 1, 8 and 32; the webhook
benchmark keeps 32 connections busy) each place such calls one after the other on one uvloop
event loop, closed loop. Every reply is checked (decoded to str, the shapes the service reads);
a wrong one or an error fails the run.

Each phase (one client at one concurrency) runs in a fresh process, so that no library's
threads, pools or imports are in another's figures. Phases are interleaved: every round
measures every client at each concurrency, the order rotating from round to round, and the
medians over the rounds are reported. Per phase: commands/s, the CPU of the client process
(all its threads: glide's Rust runtime too) per command, the latency of a command (p50/p99),
Redis' CPU per command, and the CPU of everything else on the machine (noise).

`--features` also checks, against a private redis-server this starts on a free loopback port
(with a password, killed at the end; and fakeredis' TCP server), what kcc-ivr needs of a
client: scripts with NOSCRIPT handling, pub/sub with a timed read, MULTI transactions, AUTH +
SELECT + client name, a timeout when Redis stops answering, an error when it is gone,
reconnecting after it restarts, and the embedded fallback (fakeredis). See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import math
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
CLIENT_NAME = "kcc-bench-clients"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_CLIENTS = ("ours", "redis-py", "coredis", "glide", "glide-resp3")
BASELINE = "ours"
# Packages the benchmark needs beyond the service (pyproject's `bench` extra): import name.
NEEDED = {"coredis": "coredis", "valkey-glide": "glide", "uvloop": "uvloop"}
WEBHOOK_CPU_US = 440.0  # the kcc worker's CPU per webhook (docs/BENCHMARKS.md, latest run)
START_DELAY_S = 2.5  # for the phase's process to start, import its client and connect


def missing_packages() -> list[str]:
    return [name for name, module in NEEDED.items() if importlib.util.find_spec(module) is None]


# -- the workload ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """One chained script (routing/scripts.py) of the real Lua bodies."""

    name: str
    lua: str
    sha: str
    counts: tuple[int, ...]  # per step: its key count, its arg count


def make_chain(name: str, scripts: Sequence[Any], shapes: Sequence[tuple[int, int]]) -> Chain:
    from routing.scripts import chain_lua

    lua = chain_lua(scripts)
    counts = tuple(n for shape in shapes for n in shape)
    return Chain(name, lua, hashlib.sha1(lua.encode()).hexdigest(), counts)


class Workload:
    """The Redis commands of one call's webhooks, built from the service's own scripts and keys."""

    FLOW = "bench"
    PRODUCT = "vog_np"

    def __init__(self) -> None:
        from routing import keys
        from routing.board import MATCH_ROUNDS
        from routing.queue import priority_base
        from routing.scripts import LuaScript
        from routing.sealing import Sealer

        self.keys = keys
        sealer = Sealer("bench-redis-clients-" + "0123456789abcdef" * 3)
        session = {
            "call_sid": "CA" + "0" * 32,
            "caller": "+31612345678",
            "flow": self.FLOW,
            "flow_version": "f" * 64,
            "language": "nl",
            "started_at": "2026-12-01T10:00:00+01:00",
            "seq": 3,
            "node": "application_number",
            "path": ["main=1", "vog=2", "vog_np=#"],
            "values": {f"v{i}": "x" * 40 for i in range(12)},
            "phase": "menu",
        }
        # ~1.5 KB sealed session and ~1 KB sealed entry, as the service writes them.
        self.session = sealer.seal(json.dumps(session))
        self.entry = sealer.seal(json.dumps({**session, "values": {}, "theme": "x" * 300}))
        say = "Welkom bij Justis. Voor een verklaring omtrent het gedrag, toets één. " * 6
        self.reply = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="https://ivr.example.nl'
            '/twilio/step?seq=2&amp;lang=nl" numDigits="1" timeout="8"><Say language="nl-NL" '
            f'voice="Polly.Lotte">{say}</Say></Gather><Redirect>https://ivr.example.nl/twilio/'
            "step?seq=2&amp;lang=nl&amp;timeout=1</Redirect></Response>"
        )
        self.pointer = "1:1:" + "f" * 64
        self.priority_base = priority_base(0)
        self.match_rounds = MATCH_ROUNDS
        commit, end = LuaScript.named("session_commit"), LuaScript.named("session_end")
        enqueue, leave = LuaScript.named("queue_enqueue"), LuaScript.named("queue_leave")
        match, call_state = LuaScript.named("offer_match"), LuaScript.named("call_state")
        self.new_call = make_chain("commit-new", [commit], [(4, 7)])
        self.commit = make_chain("commit", [commit], [(3, 6)])
        self.queue_call = make_chain(
            "commit+enqueue+match", [commit, enqueue, match], [(3, 6), (6, 6), (2, 10)]
        )
        self.end_call = make_chain(
            "end+leave+state", [end, leave, call_state], [(2, 1), (4, 3), (2, 0)]
        )
        self.chains = (self.new_call, self.commit, self.queue_call, self.end_call)

    def live_pointer_key(self) -> str:
        return self.keys.live_flow(self.FLOW)

    def commit_args(self, sid: str, answered: int) -> tuple[list[str], list[Any]]:
        k = self.keys
        keys = [k.session(sid), k.reply(sid, max(answered, 0)), k.ended(sid)]
        args: list[Any] = [answered, max(answered, 0) + 1, self.session, k.SESSION_TTL]
        args += [self.reply, k.REPLY_TTL]
        if answered < 0:
            keys.append(self.live_pointer_key())
            args.append(self.pointer)
        return keys, args

    def enqueue_args(self, sid: str, now_ms: int) -> tuple[list[str], list[Any]]:
        k = self.keys
        keys = [
            k.queue_entry(sid),
            k.queue(self.PRODUCT),
            k.queue_index(),
            k.queue_arrivals(),
            k.ended(sid),
            k.queue_line(sid),
        ]
        args: list[Any] = [self.entry, self.priority_base, sid, self.PRODUCT]
        args += [k.QUEUE_TTL, k.CALLBACK_TTL]
        deadline = now_ms + 35_000
        named = (k.queue, k.available, k.adviser, k.offer, k.call_offer)
        templates = [k.template(name) for name in named]
        match_args = [*templates, now_ms, deadline, self.match_rounds, k.OFFER_TTL, self.PRODUCT]
        return [*keys, k.offer_sequence(), k.offer_deadlines()], args + match_args

    def end_args(self, sid: str) -> tuple[list[str], list[Any]]:
        k = self.keys
        routing = [k.call_answered(sid), k.call_offer(sid)]
        keys = [k.session(sid), k.ended(sid), k.queue_entry(sid), k.queue_line(sid), *routing]
        args: list[Any] = [k.ENDED_TTL, sid, k.template(k.queue), k.QUEUE_TTL]
        return keys + routing, args


class BadReply(Exception):
    pass


def expect(what: str, got: Any, wanted: Any) -> None:
    if got != wanted:
        raise BadReply(f"{what}: expected {wanted!r:.120}, got {got!r:.200}")


# -- the clients ----------------------------------------------------------------------------


class Client:
    """What the workload needs of a Redis client: a chained script, GET, HGET, EXISTS."""

    name = ""
    protocol = 2

    async def open(self, url: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def script(self, chain: Chain, keys: list[str], args: list[Any]) -> Any:
        raise NotImplementedError

    async def get(self, key: str) -> Any:
        raise NotImplementedError

    async def hget(self, key: str, field: str) -> Any:
        raise NotImplementedError

    async def exists(self, key: str) -> int:
        raise NotImplementedError


def url_parts(url: str) -> tuple[str, int, int, str | None]:
    parsed = urlparse(url)
    db = int(parsed.path.strip("/") or 0)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379, db, parsed.password


class RedisPyClient(Client):
    """redis-py's asyncio client (the reference) or our PipelinedRedis, as the service uses it."""

    def __init__(self, pipelined: bool) -> None:
        self.name = "ours" if pipelined else "redis-py"
        self.pipelined = pipelined
        self.redis: Any = None

    def settings(self) -> dict[str, Any]:
        return {
            "protocol": 2,
            "decode_responses": True,
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
            "health_check_interval": 30,
            "client_name": CLIENT_NAME,
        }

    async def open(self, url: str) -> None:
        from redis.asyncio import Redis

        from routing.pipelined_redis import PipelinedRedis

        cls = PipelinedRedis if self.pipelined else Redis
        self.redis = cls.from_url(url, **self.settings())
        await self.redis.ping()
        from redis.exceptions import NoScriptError

        self._noscript = NoScriptError

    async def close(self) -> None:
        await self.redis.aclose()

    async def script(self, chain: Chain, keys: list[str], args: list[Any]) -> Any:
        # routing/scripts.py's ScriptRunner.run, as it calls the client
        redis = self.redis
        try:
            return await redis.evalsha(chain.sha, len(keys), *keys, *chain.counts, *args)
        except self._noscript:
            await redis.script_load(chain.lua)
            return await redis.evalsha(chain.sha, len(keys), *keys, *chain.counts, *args)

    async def get(self, key: str) -> Any:
        return await self.redis.get(key)

    async def hget(self, key: str, field: str) -> Any:
        return await self.redis.hget(key, field)

    async def exists(self, key: str) -> int:
        return int(await self.redis.exists(key))


class CoredisClient(Client):
    name = "coredis"
    protocol = 3  # coredis 6 speaks RESP3 only

    def __init__(self) -> None:
        self.stack = AsyncExitStack()
        self.redis: Any = None

    def make(self, url: str, **extra: Any) -> Any:
        import coredis
        from coredis.retry import NoRetryPolicy

        coredis.Config.optimized = True  # its fastest documented setting (fewer validations)
        host, port, db, password = url_parts(url)
        return coredis.Redis(
            host,
            port,
            db,
            password=password,
            decode_responses=True,
            stream_timeout=2,
            connect_timeout=2,
            client_name=CLIENT_NAME,
            retry_policy=NoRetryPolicy(),  # as ours: never run a Lua script twice
            **extra,
        )

    async def open(self, url: str) -> None:
        from coredis.exceptions import NoScriptError

        self._noscript = NoScriptError
        self.redis = await self.stack.enter_async_context(self.make(url))
        await self.redis.ping()

    async def close(self) -> None:
        await self.stack.aclose()

    async def script(self, chain: Chain, keys: list[str], args: list[Any]) -> Any:
        redis = self.redis
        values = [*chain.counts, *args]
        try:
            return await redis.evalsha(chain.sha, keys=keys, args=values)
        except self._noscript:
            await redis.script_load(chain.lua)
            return await redis.evalsha(chain.sha, keys=keys, args=values)

    async def get(self, key: str) -> Any:
        return await self.redis.get(key)

    async def hget(self, key: str, field: str) -> Any:
        return await self.redis.hget(key, field)

    async def exists(self, key: str) -> int:
        return int(await self.redis.exists([key]))


def decode(value: Any) -> Any:
    """glide answers bytes; the service reads str (decode_responses=True)."""
    if type(value) is bytes:
        return value.decode()
    if type(value) is list:
        return [decode(item) for item in value]
    return value


class GlideClient(Client):
    def __init__(self, protocol: int) -> None:
        self.name = "glide" if protocol == 2 else "glide-resp3"
        self.protocol = protocol
        self.client: Any = None
        self.scripts: dict[str, Any] = {}

    @staticmethod
    def config(url: str, protocol: int, **extra: Any) -> Any:
        import glide

        host, port, db, password = url_parts(url)
        return glide.GlideClientConfiguration(
            [glide.NodeAddress(host, port)],
            credentials=glide.ServerCredentials(password) if password else None,
            database_id=db,
            client_name=CLIENT_NAME,
            request_timeout=2000,
            protocol=glide.ProtocolVersion.RESP2 if protocol == 2 else glide.ProtocolVersion.RESP3,
            advanced_config=glide.AdvancedGlideClientConfiguration(connection_timeout=2000),
            **extra,
        )

    async def open(self, url: str) -> None:
        import glide

        glide.Logger.set_logger_config(glide.LogLevel.OFF)  # the probes provoke its warnings
        self.client = await glide.GlideClient.create(self.config(url, self.protocol))
        self._script = glide.Script

    async def close(self) -> None:
        await self.client.close()

    async def script(self, chain: Chain, keys: list[str], args: list[Any]) -> Any:
        # glide's Script keeps the body in its core: EVALSHA, and on NOSCRIPT it loads it.
        script = self.scripts.get(chain.sha)
        if script is None:
            script = self.scripts[chain.sha] = self._script(chain.lua)
        values = [str(v) for v in chain.counts] + [
            v if isinstance(v, str) else str(v) for v in args
        ]  # glide takes str/bytes only
        return decode(await self.client.invoke_script(script, keys=keys, args=values))

    async def get(self, key: str) -> Any:
        return decode(await self.client.get(key))

    async def hget(self, key: str, field: str) -> Any:
        return decode(await self.client.hget(key, field))

    async def exists(self, key: str) -> int:
        return int(await self.client.exists([key]))


def make_client(name: str) -> Client:
    if name in ("ours", "redis-py"):
        return RedisPyClient(pipelined=name == "ours")
    if name == "coredis":
        return CoredisClient()
    if name in ("glide", "glide-resp3"):
        return GlideClient(2 if name == "glide" else 3)
    raise ValueError(name)


# -- one phase, in its own process ----------------------------------------------------------


@dataclass
class Job:
    client: str
    url: str
    concurrency: int
    start_ns: int  # perf_counter_ns (CLOCK_MONOTONIC, shared by the processes on Linux)
    warm_end_ns: int
    end_ns: int


@dataclass
class JobResult:
    latencies: bytes = b""  # array('q') of ns, commands completed in the measured window
    script_latencies: bytes = b""  # the EVALSHAs among them
    commands: int = 0  # all commands, warm-up included
    calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # of this process (all threads), during the measured window
    late_ms: float = 0.0  # how late the process was ready after the planned start
    versions: dict[str, str] = field(default_factory=dict)


class Runner:
    def __init__(self, job: Job, client: Client, workload: Workload) -> None:
        self.job = job
        self.client = client
        self.w = workload
        self.result = JobResult()
        self.latencies = array("q")
        self.script_latencies = array("q")

    async def timed(self, op: Awaitable[Any], script: bool) -> Any:
        start = time.perf_counter_ns()
        reply = await op
        end = time.perf_counter_ns()
        self.result.commands += 1
        if self.job.warm_end_ns <= end <= self.job.end_ns:
            self.latencies.append(end - start)
            if script:
                self.script_latencies.append(end - start)
        return reply

    async def call(self, sid: str) -> None:
        """One caller's webhooks: voice, menu, submenu (queued), skip, status."""
        w, c, timed = self.w, self.client, self.timed
        keys, args = w.commit_args(sid, -1)
        expect("incoming", await timed(c.script(w.new_call, keys, args), True), [1])
        keys, args = w.commit_args(sid, 1)
        expect("menu", await timed(c.script(w.commit, keys, args), True), [1])
        expect("HGET session", await timed(c.hget(w.keys.session(sid), "data"), False), w.session)
        keys, args = w.commit_args(sid, 2)
        more_keys, more_args = w.enqueue_args(sid, int(time.time() * 1000))
        done = await timed(c.script(w.queue_call, keys + more_keys, args + more_args), True)
        expect("submenu", done, [1, 1, []])
        expect("GET entry", await timed(c.get(w.keys.queue_entry(sid)), False), w.entry)
        keys, args = w.commit_args(sid, 3)
        expect("skip", await timed(c.script(w.commit, keys, args), True), [1])
        expect("EXISTS ended", await timed(c.exists(w.keys.ended(sid)), False), 0)
        keys, args = w.end_args(sid)
        done = await timed(c.script(w.end_call, keys, args), True)
        expect("status", done, [w.session, [w.entry, 1], [None, None]])
        self.result.calls += 1

    async def task(self, number: int) -> None:
        n = 0
        while time.perf_counter_ns() < self.job.end_ns:
            n += 1
            sid = f"CA{number:04x}{os.getpid() % 65536:04x}{n:024x}"
            try:
                await self.call(sid)
            except Exception as error:  # counted; the run fails
                kind = type(error).__name__
                self.result.errors[kind] += 1
                if len(self.result.error_samples) < 5:
                    self.result.error_samples.append(f"{kind}: {error}"[:400])
                await asyncio.sleep(0.01)

    async def sample_cpu(self) -> None:
        await asyncio.sleep(max(0, self.job.warm_end_ns - time.perf_counter_ns()) / 1e9)
        cpu = time.process_time()
        await asyncio.sleep(max(0, self.job.end_ns - time.perf_counter_ns()) / 1e9)
        self.result.cpu_seconds = time.process_time() - cpu

    async def run(self) -> JobResult:
        await self.client.open(self.job.url)
        try:
            ready = time.perf_counter_ns()
            self.result.late_ms = max(0, ready - self.job.start_ns) / 1e6
            await asyncio.sleep(max(0, self.job.start_ns - ready) / 1e9)
            sampler = asyncio.create_task(self.sample_cpu())
            await asyncio.gather(*(self.task(i) for i in range(self.job.concurrency)))
            await sampler
        finally:
            await self.client.close()
        self.result.latencies = self.latencies.tobytes()
        self.result.script_latencies = self.script_latencies.tobytes()
        return self.result


def run_job(job: Job) -> JobResult:
    import uvloop

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    runner = Runner(job, make_client(job.client), Workload())
    result = uvloop.run(runner.run())
    result.versions = package_versions()
    return result


# -- the parent: phases, measurements, report -----------------------------------------------


@dataclass
class Phase:
    client: str
    concurrency: int
    round: int
    seconds: float
    commands: int  # in the measured window
    ops_per_s: float
    cpu_us_per_op: float  # client process, all threads
    client_cores: float
    p50_ms: float
    p99_ms: float
    script_p50_ms: float
    script_p99_ms: float
    redis_cpu_us_per_op: float
    other_cores: float  # everything else on the machine
    late_ms: float
    connections: int  # the client's connections to Redis, mid-window
    errors: dict[str, int]
    error_samples: list[str]


def percentile(ordered: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in milliseconds."""
    if not ordered:
        return math.nan
    rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[rank] / 1e6


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores, all processes), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def redis_cpu_seconds(admin: Any) -> float:
    info = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def prepare_database(admin: Any, workload: Workload) -> None:
    """Flushed, and the live flow pointer the commit of a new call checks."""
    admin.flushdb()
    admin.set(workload.live_pointer_key(), workload.pointer)


def run_phase(
    client: str,
    concurrency: int,
    round_no: int,
    args: argparse.Namespace,
    admin: Any,
    workload: Workload,
) -> tuple[Phase, dict[str, str]]:
    prepare_database(admin, workload)
    start = time.perf_counter_ns() + int(START_DELAY_S * 1e9)
    warm_end = start + int(args.warmup * 1e9)
    end = warm_end + int(args.duration * 1e9)
    job = Job(client, args.redis_url, concurrency, start, warm_end, end)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(run_job, job)
        time.sleep(max(0, warm_end - time.perf_counter_ns()) / 1e9)
        redis0, busy0, wall0 = redis_cpu_seconds(admin), machine_busy_seconds(), time.monotonic()
        time.sleep(max(0, (warm_end + end) // 2 - time.perf_counter_ns()) / 1e9)
        connections = sum(1 for c in admin.client_list() if c.get("name") == CLIENT_NAME)
        time.sleep(max(0, end - time.perf_counter_ns()) / 1e9)
        redis1, busy1 = redis_cpu_seconds(admin), machine_busy_seconds()
        wall = max(1e-9, time.monotonic() - wall0)
        result = future.result(timeout=args.duration + args.warmup + 120)
    seconds = (end - warm_end) / 1e9
    latencies = array("q")
    latencies.frombytes(result.latencies)
    scripts = array("q")
    scripts.frombytes(result.script_latencies)
    ordered, script_ordered = sorted(latencies), sorted(scripts)
    commands = len(ordered)
    redis_cpu = redis1 - redis0
    client_cores = result.cpu_seconds / seconds
    return Phase(
        client=client,
        concurrency=concurrency,
        round=round_no,
        seconds=seconds,
        commands=commands,
        ops_per_s=commands / seconds,
        cpu_us_per_op=result.cpu_seconds / commands * 1e6 if commands else math.nan,
        client_cores=client_cores,
        p50_ms=percentile(ordered, 0.50),
        p99_ms=percentile(ordered, 0.99),
        script_p50_ms=percentile(script_ordered, 0.50),
        script_p99_ms=percentile(script_ordered, 0.99),
        redis_cpu_us_per_op=redis_cpu / commands * 1e6 if commands else math.nan,
        other_cores=max(0.0, (busy1 - busy0) / wall - client_cores - redis_cpu / wall),
        late_ms=result.late_ms,
        connections=connections,
        errors=dict(result.errors),
        error_samples=result.error_samples,
    ), result.versions


METRICS = (
    "ops_per_s",
    "cpu_us_per_op",
    "p50_ms",
    "p99_ms",
    "script_p99_ms",
    "redis_cpu_us_per_op",
    "client_cores",
    "other_cores",
)


def medians(phases: list[Phase]) -> dict[tuple[int, str], dict[str, float]]:
    groups: dict[tuple[int, str], list[Phase]] = {}
    for phase in phases:
        groups.setdefault((phase.concurrency, phase.client), []).append(phase)
    return {
        key: {m: statistics.median(getattr(p, m) for p in group) for m in METRICS}
        | {"rounds": len(group)}
        for key, group in groups.items()
    }


def print_report(phases: list[Phase], args: argparse.Namespace) -> dict[str, Any]:
    table = medians(phases)
    print()
    header = (
        f"{'tasks':>5} {'client':<12} {'cmds/s':>8} {'CPU µs/cmd':>10} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'EVALSHA p99':>11} {'redis µs':>8}  {'x ours cmds/s':>13} "
        f"{'x ours CPU':>10}  cores client/other"
    )
    print("medians of", args.rounds, "interleaved round(s); ratios against ours of the same rounds")
    print(header)
    print("-" * len(header))
    summary: dict[str, Any] = {}
    for concurrency in args.concurrency:
        base = table.get((concurrency, BASELINE))
        for client in args.clients:
            row = table.get((concurrency, client))
            if row is None:
                continue
            speed = row["ops_per_s"] / base["ops_per_s"] if base else math.nan
            cpu = row["cpu_us_per_op"] / base["cpu_us_per_op"] if base else math.nan
            print(
                f"{concurrency:>5} {client:<12} {row['ops_per_s']:>8.0f} "
                f"{row['cpu_us_per_op']:>10.1f} {row['p50_ms']:>7.3f} {row['p99_ms']:>7.3f} "
                f"{row['script_p99_ms']:>11.3f} {row['redis_cpu_us_per_op']:>8.1f}  "
                f"{speed:>13.2f} {cpu:>10.2f}  {row['client_cores']:.2f}/{row['other_cores']:.2f}"
            )
            summary.setdefault(str(concurrency), {})[client] = row | {
                "ops_ratio_to_ours": speed,
                "cpu_ratio_to_ours": cpu,
            }
        print()
    noisy = [p for p in phases if p.other_cores > 0.25]
    if noisy:
        print(
            f"warning: other processes used > 0.25 cores in {len(noisy)} of {len(phases)} "
            "phases ('other'); compare the ratios, and repeat the run"
        )
    late = [p for p in phases if p.late_ms > args.warmup * 1000]
    if late:
        print(f"warning: {len(late)} phase(s) started after their warm-up; raise --warmup")
    estimate = webhook_estimate(summary, args)
    return {"medians": summary, "webhook_estimate": estimate}


def webhook_estimate(summary: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """What each client's CPU per command would do to one worker's webhooks per second."""
    concurrency = str(max(args.concurrency))
    rows = summary.get(concurrency, {})
    base = rows.get(BASELINE)
    if base is None:
        return {}
    per_webhook = 8 / 5  # commands per webhook in this workload (1-2 in the service)
    print(
        f"estimate at {concurrency} tasks: a webhook costs ~{WEBHOOK_CPU_US:.0f} µs of worker CPU "
        f"with ours and sends ~{per_webhook:.1f} commands; with another client:"
    )
    estimate: dict[str, Any] = {}
    for client, row in rows.items():
        delta = (row["cpu_us_per_op"] - base["cpu_us_per_op"]) * per_webhook
        webhook = WEBHOOK_CPU_US + delta
        change = WEBHOOK_CPU_US / webhook - 1
        estimate[client] = {"webhook_cpu_us": webhook, "throughput_change": change}
        print(f"  {client:<12} {webhook:6.0f} µs per webhook: {change:+.0%} webhooks/s per worker")
    print(
        "  (glide's CPU includes its Rust threads, which can run on another core than the "
        "event loop: the loop's own share is lower, the machine's the same)"
    )
    return estimate


def package_versions() -> dict[str, str]:
    versions = {}
    for package in ("redis", "hiredis", "coredis", "valkey-glide", "uvloop", "fakeredis", "anyio"):
        with suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return versions


def machine() -> dict[str, Any]:
    model = ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }


def run_benchmark(args: argparse.Namespace) -> tuple[list[Phase], list[str], dict[str, str]]:
    import redis

    admin = redis.Redis.from_url(args.redis_url, decode_responses=True)
    admin.ping()
    workload = Workload()
    server = admin.info("server")["redis_version"]
    print(
        f"kcc-ivr Redis client benchmark: {', '.join(args.clients)} at "
        f"{', '.join(map(str, args.concurrency))} task(s), {args.rounds} round(s) of "
        f"{args.warmup:g} s warm-up + {args.duration:g} s, Redis {server} {args.redis_url} "
        f"(flushed before every phase), {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    phases: list[Phase] = []
    problems: list[str] = []
    versions: dict[str, str] = {}
    order = list(args.clients)
    for round_no in range(1, args.rounds + 1):
        for concurrency in args.concurrency:
            shift = (round_no - 1) % len(order)
            for client in order[shift:] + order[:shift]:
                phase, versions = run_phase(client, concurrency, round_no, args, admin, workload)
                phases.append(phase)
                print(
                    f"  round {round_no} {concurrency:>3} tasks {client:<12} "
                    f"{phase.ops_per_s:8.0f} cmds/s, {phase.cpu_us_per_op:6.1f} µs CPU/cmd, "
                    f"p50 {phase.p50_ms:.3f} p99 {phase.p99_ms:.3f} ms, "
                    f"{phase.connections} conn, other {phase.other_cores:.2f} cores"
                    + (f", errors {phase.errors}" if phase.errors else ""),
                    flush=True,
                )
                if phase.errors:
                    problems.append(f"{client} at {concurrency}: {phase.errors}")
                    problems.extend(f"  e.g. {sample}" for sample in phase.error_samples)
                if not phase.commands:
                    problems.append(f"{client} at {concurrency}: no command completed")
    admin.flushdb()
    return phases, problems, versions


# -- what each library can do (--features) ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server of our own on a free loopback port, with a password: stopped, frozen and
    restarted by the probes (never the shared one)."""

    PASSWORD = "bench-private-secret"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            self.PASSWORD,
            "--dir",
            str(self.workdir),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def freeze(self, frozen: bool) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def url(self, db: int = 3) -> str:
        return f"redis://:{self.PASSWORD}@127.0.0.1:{self.port}/{db}"

    def admin(self) -> Any:
        import redis

        return redis.Redis(
            port=self.port, password=self.PASSWORD, decode_responses=True, socket_timeout=2
        )


class FakeTcp:
    """fakeredis' TCP server in a thread: what a non-redis-py client would need instead of the
    embedded FakeAsyncRedis."""

    def __init__(self) -> None:
        from fakeredis import TcpFakeServer

        self.port = free_port()
        self.server = TcpFakeServer(("127.0.0.1", self.port), server_type="redis")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def timed_outcome(op: Callable[[], Awaitable[Any]], limit: float = 15) -> str:
    start = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            value = await op()
        return f"ok ({value!r:.40}) after {time.monotonic() - start:.2f} s"
    except TimeoutError as error:
        if type(error) is TimeoutError and time.monotonic() - start >= limit - 0.01:
            return f"no answer within {limit:g} s (hangs)"
        kind = f"{type(error).__module__}.{type(error).__name__}"
        return f"{kind} after {time.monotonic() - start:.2f} s"
    except Exception as error:
        kind = f"{type(error).__module__}.{type(error).__name__}"
        return f"{kind} after {time.monotonic() - start:.2f} s"


async def idle_read(read: Callable[[], Awaitable[Any]]) -> float:
    """Seconds a read with a 1 s timeout took when nothing was published (the subscription's
    own confirmation may come first: redis-py answers None at once for it)."""
    waited = 0.0
    for _ in range(3):
        start = time.monotonic()
        message = await read()
        waited = time.monotonic() - start
        if message is not None:
            raise RuntimeError(f"a message nobody published: {message!r:.80}")
        if waited >= 0.5:
            break
    return waited


async def glide_resp2_subscribe(url: str, channel: str) -> str:
    """Subscribing a RESP2 glide client (on its own client: what does that do to it?)."""
    import glide

    client = await glide.GlideClient.create(GlideClient.config(url, 2))
    try:
        try:
            await client.subscribe({channel}, timeout_ms=1000)
            subscribed = "accepted"
        except Exception as error:
            subscribed = f"failed ({type(error).__name__})"
        try:
            async with asyncio.timeout(3):
                await client.get("x")
            after = "its GET still works"
        except Exception as error:
            after = f"then its GET fails ({type(error).__name__}: {str(error)[-60:]!r})"
        return f"RESP2: subscribe() {subscribed}, {after}"
    finally:
        with suppress(Exception):
            await client.close()


class Probes:
    """The feature checks of one library; each returns a short verdict."""

    def __init__(self, name: str, server: PrivateRedis, workload: Workload) -> None:
        self.name = name
        self.server = server
        self.w = workload
        self.client = make_client(name)

    async def run(self) -> dict[str, str]:
        out: dict[str, str] = {}
        await self.client.open(self.server.url())
        try:
            out["scripts (NOSCRIPT reload)"] = await self.scripts()
            out["AUTH + SELECT + client name"] = self.identity()
            out["pub/sub, read with timeout"] = await self.pubsub()
            out["MULTI/EXEC transaction"] = await self.transaction()
            self.server.freeze(True)
            try:
                out["Redis frozen: GET"] = await timed_outcome(lambda: self.client.get("x"))
            finally:
                self.server.freeze(False)
            await asyncio.sleep(0.5)
            out["after thaw: GET"] = await timed_outcome(lambda: self.client.get("x"))
            self.server.stop()
            out["Redis gone: GET"] = await timed_outcome(lambda: self.client.get("x"))
            self.server.start()
            out["Redis restarted: GET"] = await self.reconnect()
        finally:
            with suppress(Exception):
                async with asyncio.timeout(5):
                    await self.client.close()
        return out

    async def scripts(self) -> str:
        w, c = self.w, self.client
        keys, args = w.commit_args("CAprobe", 1)
        self.server.admin().script_flush()
        try:
            await c.script(w.commit, keys, args)  # refused (no session), but it ran
            self.server.admin().script_flush()
            reply = await c.script(w.commit, keys, args)
        except Exception as error:
            return f"fails: {type(error).__name__}: {error}"[:120]
        return "yes" if reply == ["refused", 0] else f"odd reply {reply!r:.60}"

    def identity(self) -> str:
        clients = self.server.admin().client_list()
        mine = [c for c in clients if c.get("name") == CLIENT_NAME]
        if not mine:
            return "no connection named " + CLIENT_NAME
        dbs = sorted({c["db"] for c in mine})
        return f"yes ({len(mine)} connection(s), db {','.join(dbs)})"

    async def pubsub(self) -> str:
        try:
            return await self._pubsub()
        except Exception as error:
            return f"fails: {type(error).__name__}: {error}"[:160]

    async def _pubsub(self) -> str:
        channel = "{kcc}:probe-events"
        c = self.client
        if isinstance(c, RedisPyClient):
            pubsub = c.redis.pubsub()
            await pubsub.subscribe(channel)
            waited = await idle_read(
                lambda: pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            )
            await c.redis.publish(channel, "hello")
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            await pubsub.aclose()
            data = message and message["data"]
            api = "pubsub() + get_message(timeout=)"
        elif isinstance(c, CoredisClient):
            async with c.redis.pubsub(channels=[channel], ignore_subscribe_messages=True) as ps:
                waited = await idle_read(
                    lambda: ps.get_message(ignore_subscribe_messages=True, timeout=1.0)
                )
                await c.redis.publish(channel, "hello")
                message = await ps.get_message(ignore_subscribe_messages=True, timeout=1.0)
            data = message and message["data"]
            api = "async with pubsub(channels=) + get_message(timeout=)"
        else:
            assert isinstance(c, GlideClient)
            import glide

            async def next_message() -> Any:
                try:
                    return await asyncio.wait_for(listener.get_pubsub_message(), 1.0)
                except TimeoutError:
                    return None

            resp2 = ""
            if c.protocol == 2:
                resp2 = "; " + await glide_resp2_subscribe(self.server.url(), channel)
            listener = await glide.GlideClient.create(GlideClient.config(self.server.url(), 3))
            try:
                await listener.subscribe({channel}, timeout_ms=2000)
                waited = await idle_read(next_message)
                await c.client.publish("hello", channel)
                message = await next_message()
                data = message and decode(message.message)
            finally:
                await listener.close()
            api = "a RESP3 client: subscribe() + get_pubsub_message() in wait_for" + resp2
        ok = 0.8 <= waited <= 1.6 and data == "hello"
        return f"{'yes' if ok else 'NO'}: {api} (idle read {waited:.2f} s, got {data!r})"

    async def transaction(self) -> str:
        c = self.client
        key = "{kcc}:probe-counter"
        try:
            if isinstance(c, RedisPyClient):
                async with c.redis.pipeline(transaction=True) as pipe:
                    pipe.set(key, "1")
                    pipe.incr(key)
                    result = await pipe.execute()
                result = [bool(result[0]), result[1]]
            elif isinstance(c, CoredisClient):
                async with c.redis.pipeline(transaction=True) as pipe:
                    first = pipe.set(key, "1")
                    second = pipe.incr(key)
                result = [bool(await first), await second]
            else:
                import glide

                batch = glide.Batch(is_atomic=True)
                batch.set(key, "1")
                batch.incr(key)
                done = await c.client.exec(batch, raise_on_error=True)
                result = [done[0] == "OK" or done[0] == b"OK", done[1]]
        except Exception as error:
            return f"fails: {type(error).__name__}: {error}"[:120]
        return "yes" if result == [True, 2] else f"odd result {result!r}"

    async def reconnect(self) -> str:
        start = time.monotonic()
        failures = 0
        while time.monotonic() - start < 15:
            try:
                async with asyncio.timeout(3):
                    await self.client.get("x")
                return f"ok after {time.monotonic() - start:.2f} s, {failures} failed command(s)"
            except Exception:
                failures += 1
                await asyncio.sleep(0.1)
        return f"NO: still failing after 15 s ({failures} failed command(s))"


async def fake_server_probe(name: str, workload: Workload) -> str:
    """The embedded fallback for this library: FakeAsyncRedis in-process for the redis-py API,
    fakeredis' TCP server for the others."""
    w = workload
    keys, args = w.commit_args("CAfake", -1)
    if name in ("ours", "redis-py"):
        from fakeredis import FakeAsyncRedis

        from routing.scripts import LuaScript, ScriptRunner, ScriptStep, as_int

        fake = FakeAsyncRedis(decode_responses=True)
        try:
            await fake.set(w.live_pointer_key(), w.pointer)
            commit = ScriptStep(LuaScript.named("session_commit"), keys, args, as_int)
            done = [await ScriptRunner(fake).run_one(commit)]
            value = await fake.hget(w.keys.session("CAfake"), "data")
        finally:
            await fake.aclose()
        ok = done == [1] and value == w.session
        return f"{'yes' if ok else 'NO'}: FakeAsyncRedis in-process, the same code"
    server = FakeTcp()
    client = make_client(name)
    how = "fakeredis TCP server in a thread"
    try:
        async with asyncio.timeout(10):
            try:
                await client.open(f"redis://127.0.0.1:{server.port}/0")
            except Exception as error:
                if not isinstance(client, GlideClient):
                    raise
                # glide's default discovery sends INFO REPLICATION, which fakeredis lacks
                import glide

                first = f"{type(error).__name__}: {error}"[:70]
                config = GlideClient.config(
                    f"redis://127.0.0.1:{server.port}/0",
                    client.protocol,
                    node_discovery_mode=glide.NodeDiscoveryMode.STATIC,
                )
                client.client = await glide.GlideClient.create(config)
                client._script = glide.Script
                how += f", only with node_discovery_mode=STATIC (default: {first})"
            try:
                admin = __import__("redis").Redis(port=server.port, decode_responses=True)
                admin.set(w.live_pointer_key(), w.pointer)
                done = await client.script(w.new_call, keys, args)
                value = await client.hget(w.keys.session("CAfake"), "data")
            finally:
                await client.close()
        ok = done == [1] and value == w.session
        return f"{'yes' if ok else 'NO'}: {how}"
    except Exception as error:
        return f"NO: fakeredis TCP server: {type(error).__name__}: {error}"[:160]
    finally:
        server.close()


def probe_job(name: str, workdir: str) -> dict[str, str]:
    import uvloop

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    workload = Workload()
    server = PrivateRedis(Path(workdir))
    server.start()
    try:
        results = uvloop.run(Probes(name, server, workload).run())
    finally:
        server.stop()
    results["embedded fallback"] = uvloop.run(fake_server_probe(name, workload))
    return results


def run_features(clients: Sequence[str]) -> dict[str, dict[str, str]]:
    print("\nfeature checks (a private redis-server with a password, db 3; fakeredis):", flush=True)
    found: dict[str, dict[str, str]] = {}
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="kcc-bench-redis-") as workdir:
        for name in clients:
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                found[name] = pool.submit(probe_job, name, workdir).result(timeout=300)
            print(f"\n  {name}", flush=True)
            for check, verdict in found[name].items():
                print(f"    {check:<30} {verdict}", flush=True)
    return found


# -- main ----------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/10",
        help="a database of its own: FLUSHED before every phase (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int_list,
        default=[1, 8, 32],
        help="tasks sending commands at once, comma-separated (default 1,8,32)",
    )
    parser.add_argument(
        "--clients",
        type=lambda text: [x for x in text.split(",") if x],
        default=list(ALL_CLIENTS),
        help=f"comma-separated, of {','.join(ALL_CLIENTS)} (default: all)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    parser.add_argument(
        "--features", action="store_true", help="also check what each library can do (above)"
    )
    parser.add_argument(
        "--features-only", action="store_true", help="only the feature checks, no benchmark"
    )
    parser.add_argument("--json-out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    unknown = [c for c in args.clients if c not in ALL_CLIENTS]
    if unknown:
        parser.error(f"unknown client(s) {unknown}; known: {', '.join(ALL_CLIENTS)}")
    if args.rounds < 1 or args.duration <= 0 or args.warmup < 0 or min(args.concurrency) < 1:
        parser.error("--rounds, --duration and --concurrency must be positive")
    if BASELINE not in args.clients:
        args.clients.insert(0, BASELINE)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_packages()
    if missing:
        print(
            f"bench.redis_clients needs {', '.join(missing)}, not installed: "
            f".venv/bin/pip install -e '.[bench]'  (or: pip install {' '.join(missing)})",
            file=sys.stderr,
        )
        return 2
    started = datetime.now(UTC)
    phases: list[Phase] = []
    problems: list[str] = []
    summary: dict[str, Any] = {}
    if not args.features_only:
        phases, problems, _ = run_benchmark(args)
        summary = print_report(phases, args)
    features = run_features(args.clients) if args.features or args.features_only else {}
    if problems:
        print("\nFAILED RUN:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
    if args.json_out:
        document = {
            "command": " ".join(
                [Path(sys.executable).name, "-m", "bench.redis_clients", *sys.argv[1:]]
            ),
            "started": started.isoformat(),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": machine(),
            "phases": [asdict(p) for p in phases],
            "summary": summary,
            "features": features,
            "problems": problems,
            "ok": not problems,
        }
        args.json_out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 1 if problems else 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as `python bench/redis_clients.py`
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
