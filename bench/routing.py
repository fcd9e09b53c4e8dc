"""Routing benchmark: from an adviser becoming available to the REST redirect of their call.

    .venv/bin/python -m bench.routing                                  # 1k, 10k, 100k waiting
    .venv/bin/python -m bench.routing --sizes 1000 --samples 50        # quick: a few seconds

Requirement: with 10,000 calls waiting across 9 products and 500 advisers, the time from an
adviser becoming available to the REST redirect being sent has p99 <= 20 ms, and the cost of an
assignment grows no faster than log(n) in the number of waiting calls.

Setup (a dedicated database of the real Redis, flushed first, `--redis-url`):

* queues: n calls spread round-robin over the 9 products (95 % priority 0, 4 % priority 1,
  1 % priority 2), written with pipelined SET (one per call) + ZADD (one per product and
  batch of 2,000) in the format of routing/queue.py's enqueue script: the QueueEntry JSON
  sealed with routing.sealing.Sealer under `queue-entry:<sid>`, the CallSid in `queue:<product>`
  scored priority_base(priority) + arrival, the arrival counter. Then one probe call per
  product is queued with CallQueue.enqueue itself (which also sets the product index and the
  queues' TTLs the app's way), checked to land right behind the filled ones and to open with
  CallQueue.get, and removed with CallQueue.remove. Sizes are filled incrementally (1k, then
  9k more, then 90k more) and emptied again the same way for the second pass.
* advisers: 500 registered with AdviserBoard.register, 1-3 random skills each (seeded), half
  put on break (available, then break, without matching) and half left offline.

Every sample takes one random adviser from break/offline to available while everyone else is
away, so the match finds exactly that adviser and the head of one of their queues. Afterwards
the offer is settled `withdrawn` (offer_settle.lua puts the call back at its own score and the
adviser to available) and the adviser goes back to break: n stays constant, nothing piles up.

Phases, interleaved sample by sample (rotating order) so that all see the same machine noise:

* ping      - one PING on the same connection pool: the Redis round-trip floor of this run.
* match     - AdviserBoard.match(skills) alone, the adviser already available: the Lua match.
* recording - Router.adviser_command(name, AVAILABLE) with RecordingTelephony (wrapped to
              timestamp the moment redirect() is invoked). Measured: before adviser_command
              -> redirect invoked. The router's steps before the redirect are timed too
              (wrappers around the board, queue, sealer and event bus: ~0.1 us each).
* twilio    - the same with the real TwilioTelephony (twilio SDK, asyncio on the loop, HTTP
              keep-alive) against tests/support/twilio_stub.TwilioStub in a thread of this
              process, with TCP_NODELAY added (NoDelayStub below; `--stub-as-is` without).
              Measured: -> redirect invoked, -> the stub received the POST (its timestamp
              is taken after it parsed the form), -> redirect() returned.
* statelog  - recording, plus the adviser state log production wires in (api/services.py:
              SqlAdviserLog.state_changed in a worker thread, here on SQLite in a temporary
              folder). Router.adviser_command awaits it *before* matching. `--no-state-log`
              leaves it out, and the next one.
* redirect_first - statelog with RedirectFirstRouter (below): a proposed change, bench only.

Options: --server-time also reads the Lua match's own execution time from the Redis SLOWLOG
(sets slowlog-log-slower-than 0 and slowlog-max-len for the run and restores both: global
settings of a shared server, hence opt-in). --loop asyncio|uvloop (production: uvloop).

Noise: the machine is shared; the CPU used by this process, by redis-server and by everything
else is printed per size. Ratios to the PING of the same run are the noise-robust figures, and
so is "CPU p50": this process's CPU time (all its threads, the stub's included) from the start
of the sample to the redirect, which other processes move less (they still evict caches and
share the cores' execution units). After the largest size the
smaller ones are measured again (`--no-down` skips that): a difference between the two
measurements of the same size is noise, not n.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import platform
import random
import resource
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import redis.asyncio as aioredis
import uvicorn
import uvloop
from uvicorn.protocols.http.h11_impl import H11Protocol

from routing import keys
from routing.board import AdviserBoard, AdviserState, Command, Offer, Settle
from routing.entry import QueueEntry
from routing.events import EventBus
from routing.queue import CallQueue, priority_base
from routing.router import Router
from routing.scripts import LuaScript, chain_lua
from routing.sealing import Sealer
from routing.telephony import RecordingTelephony, Telephony, TwilioTelephony
from tests.support.twilio_stub import TwilioStub

PRODUCTS = ["vog_np", "vog_rp", "gva", "name_change", "pardon", "boa", "wpbr", "wwm", "track"]
SECRET_KEY = "bench-routing-secret-" + "0123456789abcdef" * 3
CLIENT_NAME = "kcc-bench-routing"
PUBLIC_BASE = "https://ivr.bench.invalid"
CLK_TCK = os.sysconf("SC_CLK_TCK")
FILL_BATCH = 2000
T = TypeVar("T")


# -- instrumented parts --------------------------------------------------------------------


class Steps:
    """(name, start ns, end ns) of the awaited steps of one sample."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, int, int]] = []

    async def time(self, name: str, step: Awaitable[T]) -> T:
        start = time.monotonic_ns()
        try:
            return await step
        finally:
            self.spans.append((name, start, time.monotonic_ns()))


class TimedBoard(AdviserBoard):
    def __init__(self, redis: aioredis.Redis, steps: Steps) -> None:
        super().__init__(redis)
        self.steps = steps

    async def command(self, name: str, command: Command, now_ms: int) -> AdviserState:
        return await self.steps.time("adviser_command.lua", super().command(name, command, now_ms))

    async def view(self, name: str) -> Any:
        return await self.steps.time("view (HGETALL)", super().view(name))

    async def match(self, products: list[str], now_ms: int) -> list[Offer]:
        return await self.steps.time("offer_match.lua", super().match(products, now_ms))


class TimedQueue(CallQueue):
    def __init__(self, redis: aioredis.Redis, sealer: Sealer, steps: Steps) -> None:
        super().__init__(redis, sealer)
        self.steps = steps

    async def get(self, call_sid: str) -> QueueEntry | None:
        return await self.steps.time("queue.get (GET+open)", super().get(call_sid))


class TimedSealer(Sealer):
    def __init__(self, secret: str, steps: Steps) -> None:
        super().__init__(secret)
        self.steps = steps

    def open(self, sealed: str) -> str:
        start = time.monotonic_ns()
        try:
            return super().open(sealed)
        finally:
            self.steps.spans.append(("  of which Fernet open", start, time.monotonic_ns()))


class TimedEvents(EventBus):
    def __init__(self, redis: aioredis.Redis, steps: Steps) -> None:
        super().__init__(redis)
        self.steps = steps

    async def publish(self, adviser: str, event: str, data: dict[str, Any]) -> None:
        await self.steps.time(f"publish {event}", super().publish(adviser, event, data))


@dataclass
class Redirect:
    call_sid: str
    url: str
    invoked_ns: int
    invoked_cpu_ns: int  # this process's CPU time (all threads) at the invocation
    returned_ns: int = 0


class StampingTelephony:
    """Wraps a Telephony: the moment redirect() is invoked and the moment it returns."""

    def __init__(self, inner: Telephony) -> None:
        self.inner = inner
        self.last: Redirect | None = None

    async def redirect(self, call_sid: str, url: str) -> None:
        self.last = Redirect(call_sid, url, time.monotonic_ns(), time.process_time_ns())
        await self.inner.redirect(call_sid, url)
        self.last.returned_ns = time.monotonic_ns()

    async def dial_out(self, *, to: str, from_: str, url: str, status_callback: str) -> str:
        return await self.inner.dial_out(
            to=to, from_=from_, url=url, status_callback=status_callback
        )

    async def hang_up(self, call_sid: str) -> None:
        await self.inner.hang_up(call_sid)


class NoDelayH11(H11Protocol):
    """uvicorn's h11 protocol with TCP_NODELAY on the accepted socket.

    TwilioStub binds `socket.socket(AF_INET, SOCK_STREAM)` (proto 0), so asyncio's
    _set_nodelay skips the accepted sockets; h11 writes a response's head and body in two
    send() calls and Nagle holds the body back until the client's delayed ACK (40 ms on
    Linux) on every keep-alive request after the first. Twilio's API does not do that.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


class NoDelayStub(TwilioStub):
    def _config(self) -> uvicorn.Config:
        config = super()._config()
        config.http = NoDelayH11
        return config


class RedirectFirstRouter(Router):
    """A proposal, measured here only: the state event and the state log after the redirect.

    Router.adviser_command publishes "available" and awaits the state log (a database write)
    before it matches. Here they follow the delivery; when an offer was made the desk is not
    told "available" at all (it goes straight to the offer, the order of its events stays
    right) and the log still gets the available moment, with its own timestamp.
    """

    async def adviser_command(self, name: str, command: Command) -> AdviserState:
        at = self.now_ms()
        state = await self.board.command(name, command, at)
        offers: list[Offer] = []
        if state is AdviserState.AVAILABLE:
            view = await self.board.view(name)
            offers = await self.board.match(view.skills if view else [], self.now_ms())
        if not offers:
            await self._state_changed(name, state, None)
            return state
        await self._deliver(offers)
        if self.on_state_change is not None:
            await self.on_state_change(name, state, at, None)
        return state


class BenchUrls:
    def connect(self, offer_id: str) -> str:
        return f"{PUBLIC_BASE}/twilio/connect?offer={offer_id}"

    def adviser_status(self, offer_id: str) -> str:
        return f"{PUBLIC_BASE}/twilio/adviser-status?offer={offer_id}"


def offer_id_of(url: str) -> str:
    return url.rsplit("offer=", 1)[1]


def now_ms() -> int:
    return int(time.time() * 1000)


# -- filling -------------------------------------------------------------------------------


def priority_for(rng: random.Random) -> int:
    roll = rng.random()
    return 2 if roll < 0.01 else 1 if roll < 0.05 else 0


async def fill(
    redis: aioredis.Redis, sealer: Sealer, start: int, count: int, rng: random.Random
) -> None:
    """Calls start..start+count-1, as routing/queue.py's enqueue script would have written them."""
    arrival = int(await redis.get(keys.queue_arrivals()) or 0)
    queued_at = datetime.now(UTC)
    for first in range(start, start + count, FILL_BATCH):
        pipe = redis.pipeline(transaction=False)
        scores: dict[str, dict[str, int]] = {product: {} for product in PRODUCTS}
        for i in range(first, min(first + FILL_BATCH, start + count)):
            product = PRODUCTS[i % len(PRODUCTS)]
            sid = f"CA{i:032x}"
            priority = priority_for(rng)
            entry = QueueEntry(
                call_sid=sid,
                caller=f"+316{i % 10**8:08d}",
                language="nl" if i % 5 else "en",
                product=product,
                theme="status",
                priority=priority,
                verification="unverified",
                path=["1", str(1 + i % 9)],
                queued_at=queued_at,
            )
            arrival += 1
            pipe.set(keys.queue_entry(sid), sealer.seal(entry.model_dump_json()), ex=keys.QUEUE_TTL)
            scores[product][sid] = priority_base(priority) + arrival
        for product, members in scores.items():
            if members:
                pipe.zadd(keys.queue(product), members, nx=True)
        await pipe.execute()
    await redis.set(keys.queue_arrivals(), arrival, ex=keys.QUEUE_TTL)


async def check_format(redis: aioredis.Redis, queue: CallQueue) -> None:
    """Enqueue one call per product the app's way and take it out again.

    It must land right behind the filled calls (same arrival counter, same scores); and its
    enqueue script sets the product index and the queues' TTLs exactly as the app does.
    """
    for product in PRODUCTS:
        sid = f"CAprobe{product}"
        entry = QueueEntry(
            call_sid=sid,
            caller="+31600000000",
            language="nl",
            product=product,
            theme="status",
            verification="unverified",
            path=[],
            queued_at=datetime.now(UTC),
        )
        if not await queue.enqueue(entry):
            raise RuntimeError("the probe call was not queued")
        expected = priority_base(0) + int(await redis.get(keys.queue_arrivals()) or 0)
        score = await redis.zscore(keys.queue(product), sid)
        last = await redis.zrange(keys.queue(product), -1, -1)
        opened = await queue.get(sid)
        if score != expected or last != [sid] or opened != entry:
            raise RuntimeError(f"the filled queue is not in CallQueue's format ({score})")
        await queue.remove(sid)


async def shrink(redis: aioredis.Redis, keep: int, filled: int) -> None:
    """Take calls keep..filled-1 (the last ones filled) out again."""
    for first in range(keep, filled, FILL_BATCH):
        batch = range(first, min(first + FILL_BATCH, filled))
        pipe = redis.pipeline(transaction=False)
        for n, product in enumerate(PRODUCTS):
            sids = [f"CA{i:032x}" for i in batch if i % len(PRODUCTS) == n]
            if sids:
                pipe.zrem(keys.queue(product), *sids)
        pipe.unlink(*(keys.queue_entry(f"CA{i:032x}") for i in batch))
        await pipe.execute()


async def waiting_count(redis: aioredis.Redis) -> int:
    pipe = redis.pipeline(transaction=False)
    for product in PRODUCTS:
        pipe.zcard(keys.queue(product))
    return sum(await pipe.execute())


async def register_advisers(
    board: AdviserBoard, count: int, rng: random.Random
) -> dict[str, list[str]]:
    skills: dict[str, list[str]] = {}
    for i in range(count):
        name = f"adv{i:03d}"
        # Every product gets advisers: the first 9 each start with a different one.
        first = [PRODUCTS[i % len(PRODUCTS)]]
        more = rng.sample([p for p in PRODUCTS if p != first[0]], rng.randint(0, 2))
        skills[name] = first + more
        await board.register(name, skills=skills[name], device=f"client:{name}")
        if i % 2 == 0:  # on break; the others stay offline
            await board.command(name, Command.AVAILABLE, now_ms())
            await board.command(name, Command.BREAK, now_ms())
    return skills


# -- sampling ------------------------------------------------------------------------------


@dataclass
class Sample:
    total_ns: int  # the phase's headline figure
    extra: dict[str, int] = field(default_factory=dict)  # other figures (ns)
    steps: dict[str, int] = field(default_factory=dict)  # recording: per step before redirect


@dataclass
class Bench:
    redis: aioredis.Redis
    board: TimedBoard
    queue: TimedQueue
    steps: Steps
    skills: dict[str, list[str]]
    routers: dict[str, tuple[Router, StampingTelephony]]
    stub: TwilioStub
    rng: random.Random
    match_sha: str
    server_time: bool
    slowlog_id: int = -1

    def pick(self) -> str:
        return self.rng.choice(sorted(self.skills))

    async def put_back(self, offer_id: str, name: str) -> None:
        settled = await self.board.settle(offer_id, Settle.WITHDRAWN, now_ms())
        if (
            settled is None
            or settled.adviser != name
            or settled.adviser_state is not AdviserState.AVAILABLE
        ):
            raise RuntimeError(f"could not withdraw offer {offer_id}: {settled}")
        await self.board.command(name, Command.BREAK, now_ms())

    async def ping(self) -> Sample:
        cpu = time.process_time_ns()
        start = time.monotonic_ns()
        await self.redis.ping()
        took = time.monotonic_ns() - start
        return Sample(took, {"cpu": time.process_time_ns() - cpu})

    async def match(self) -> Sample:
        name = self.pick()
        await self.board.command(name, Command.AVAILABLE, now_ms())
        now = now_ms()
        cpu = time.process_time_ns()
        start = time.monotonic_ns()
        offers = await AdviserBoard.match(self.board, self.skills[name], now)
        took = time.monotonic_ns() - start
        cpu = time.process_time_ns() - cpu
        if len(offers) != 1 or offers[0].adviser != name:
            raise RuntimeError(f"expected one offer to {name}, got {offers}")
        sample = Sample(took, {"cpu": cpu})
        if self.server_time:
            sample.extra["server_us"] = await self.slowlog_match_us(now)
        await self.put_back(offers[0].offer_id, name)
        return sample

    async def slowlog_match_us(self, now: int) -> int:
        """The match script's own execution time (us) as Redis logged it; -1 if not found."""
        entries: list[dict[str, Any]] = await self.redis.slowlog_get(64)
        found = -1
        for entry in entries:
            if entry["id"] <= self.slowlog_id:
                continue
            command = entry["command"]
            command = command.decode() if isinstance(command, bytes) else str(command)
            if (
                entry.get("client_name") in (CLIENT_NAME, CLIENT_NAME.encode())
                and command.startswith(f"EVALSHA {self.match_sha}")
                and f" {now} " in command
            ):
                found = int(entry["duration"])
        if entries:
            self.slowlog_id = max(self.slowlog_id, *(int(e["id"]) for e in entries))
        return found

    async def route(self, variant: str) -> Sample:
        router, telephony = self.routers[variant]
        name = self.pick()
        telephony.last = None
        requests_before = len(self.stub.requests) if variant == "twilio" else 0
        self.steps.spans.clear()
        cpu = time.process_time_ns()
        start = time.monotonic_ns()
        state = await router.adviser_command(name, Command.AVAILABLE)
        returned = time.monotonic_ns()
        redirect = telephony.last
        if state is not AdviserState.AVAILABLE or redirect is None:
            raise RuntimeError(f"{name} became {state} and no redirect was made")
        sample = Sample(redirect.invoked_ns - start)
        sample.extra["command_returned"] = returned - start
        sample.extra["cpu"] = redirect.invoked_cpu_ns - cpu
        if variant == "twilio":
            sample.extra["redirect_returned"] = redirect.returned_ns - start
            posts = [r for r in self.stub.requests[requests_before:] if r.method == "POST"]
            if len(posts) != 1 or posts[0].call_sid != redirect.call_sid or posts[0].status != 200:
                raise RuntimeError(f"the stub saw {posts} for {redirect.call_sid}")
            sample.extra["stub_received"] = int(posts[0].at * 1e9) - start
        if variant == "recording":
            for step, began, ended in self.steps.spans:
                if ended <= redirect.invoked_ns:
                    sample.steps[step] = sample.steps.get(step, 0) + ended - began
        await self.put_back(offer_id_of(redirect.url), name)
        return sample


# -- statistics ----------------------------------------------------------------------------


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank percentile, in the unit of the values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary_ms(values: list[int]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.50) / 1e6,
        "p90": percentile(values, 0.90) / 1e6,
        "p99": percentile(values, 0.99) / 1e6,
        "max": max(values) / 1e6,
        "mean": statistics.fmean(values) / 1e6,
    }


def machine_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def redis_cpu_seconds(redis: aioredis.Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# -- running -------------------------------------------------------------------------------


def make_state_log(url: str) -> Callable[[str, str, int, str | None], Awaitable[None]]:
    """What api/services.py wires into Router.on_state_change: the log written in the background."""
    from api.database.engine import make_engine
    from api.database.schema import upgrade
    from routing.adviser_history import AdviserStateChange, SqlAdviserLog
    from routing.background import BackgroundWriter

    engine = make_engine(url)
    upgrade(engine)  # the benchmark's own database
    writer: BackgroundWriter[AdviserStateChange] = BackgroundWriter(
        SqlAdviserLog(engine).state_changes, anyio.to_thread.run_sync
    )

    async def state_changed(
        adviser: str, state: AdviserState, at_ms: int, call_sid: str | None
    ) -> None:
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        writer.submit(
            AdviserStateChange(adviser=adviser, state=state.value, at=at, call_sid=call_sid)
        )

    return state_changed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    redis: aioredis.Redis = aioredis.from_url(
        args.redis_url,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
        client_name=CLIENT_NAME,
    )
    await redis.flushdb()
    rng = random.Random(args.seed)
    steps = Steps()
    sealer = TimedSealer(SECRET_KEY, steps)
    board = TimedBoard(redis, steps)
    queue = TimedQueue(redis, sealer, steps)
    events = TimedEvents(redis, steps)
    # The match script as the runner sends it: wrapped by routing/lua/chain.lua.
    match_text = chain_lua([LuaScript.named("offer_match")])
    match_sha = hashlib.sha1(match_text.encode()).hexdigest()
    started = time.monotonic()
    skills = await register_advisers(board, args.advisers, rng)
    print(
        f"{args.advisers} advisers registered ({sum(len(s) for s in skills.values())} skills) "
        f"in {time.monotonic() - started:.2f} s",
        flush=True,
    )
    slowlog_saved: dict[str, Any] = {}
    stub_class = TwilioStub if args.stub_as_is else NoDelayStub
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as workdir, stub_class() as stub:
        twilio = TwilioTelephony(
            account_sid=stub.account_sid, auth_token=stub.auth_token, api_base=stub.base_url
        )
        variants: dict[str, Telephony] = {"recording": RecordingTelephony(), "twilio": twilio}
        if args.state_log:
            variants["statelog"] = RecordingTelephony()
            variants["redirect_first"] = RecordingTelephony()
        routers: dict[str, tuple[Router, StampingTelephony]] = {}
        for variant, inner in variants.items():
            stamping = StampingTelephony(inner)
            router_class = RedirectFirstRouter if variant == "redirect_first" else Router
            router = router_class(
                board=board,
                queue=queue,
                telephony=stamping,
                events=events,
                urls=BenchUrls(),
                now_ms=now_ms,
                products=list(PRODUCTS),
                on_state_change=make_state_log(
                    args.state_log_url or f"sqlite:///{Path(workdir) / 'bench.sqlite3'}"
                )
                if variant in ("statelog", "redirect_first")
                else None,
            )
            routers[variant] = (router, stamping)
        bench = Bench(redis, board, queue, steps, skills, routers, stub, rng, match_sha, False)
        phases: dict[str, Callable[[], Awaitable[Sample]]] = {
            "ping": bench.ping,
            "match": bench.match,
            **{v: (lambda v=v: bench.route(v)) for v in routers},  # type: ignore[misc]
        }
        try:
            if args.server_time:
                slowlog_saved = cast(
                    dict[str, Any],
                    await redis.config_get("slowlog-log-slower-than")
                    | await redis.config_get("slowlog-max-len"),
                )
                await redis.config_set("slowlog-log-slower-than", 0)
                await redis.config_set("slowlog-max-len", 1024)
                bench.server_time = True
            sizes: list[dict[str, Any]] = []
            filled = 0
            up = sorted(set(args.sizes))
            down = list(reversed(up[:-1])) if args.down else []
            for size in up + down:
                result = await run_size(bench, phases, size, filled, sealer, args)
                result["pass"] = "down" if sizes and size < filled else "up"
                sizes.append(result)
                filled = size
        finally:
            for name, value in slowlog_saved.items():
                await redis.config_set(name, value)
            await twilio.aclose()
    await redis.flushdb()
    await redis.aclose()
    return {"sizes": sizes}


async def run_size(
    bench: Bench,
    phases: dict[str, Callable[[], Awaitable[Sample]]],
    size: int,
    filled: int,
    sealer: Sealer,
    args: argparse.Namespace,
) -> dict[str, Any]:
    redis = bench.redis
    started = time.monotonic()
    if size >= filled:
        await fill(redis, sealer, filled, size - filled, bench.rng)
        how = f"filled {size - filled:,}"
    else:
        await shrink(redis, size, filled)
        how = f"removed {filled - size:,}"
    fill_seconds = time.monotonic() - started
    await check_format(redis, bench.queue)
    if await waiting_count(redis) != size:
        raise RuntimeError(f"expected {size} waiting calls, found {await waiting_count(redis)}")
    head = await redis.zrange(keys.queue(PRODUCTS[0]), 0, 0)
    if await bench.queue.get(str(head[0])) is None:
        raise RuntimeError("a filled entry does not open with CallQueue.get")
    used = (await redis.info("memory"))["used_memory_human"]
    print(
        f"\n== {size:,} calls waiting ({how} in {fill_seconds:.2f} s; redis {used}) ==",
        flush=True,
    )
    bench.stub.reset()
    names = list(phases)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    busy0, own0, redis0 = machine_busy_seconds(), own_cpu_seconds(), await redis_cpu_seconds(redis)
    wall0 = time.monotonic()
    for i in range(args.warmup + args.samples):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            sample = await phases[name]()
            if i >= args.warmup:
                samples[name].append(sample)
    wall = time.monotonic() - wall0
    busy = machine_busy_seconds() - busy0
    own = own_cpu_seconds() - own0
    redis_cpu = await redis_cpu_seconds(redis) - redis0
    if await waiting_count(redis) != size:
        raise RuntimeError("the number of waiting calls changed during sampling")
    result: dict[str, Any] = {
        "size": size,
        "fill_seconds": round(fill_seconds, 3),
        "redis_used_memory": used,
        "cpu_cores": {
            "bench_process": round(own / wall, 2),
            "redis": round(redis_cpu / wall, 2),
            "others": round(max(0.0, busy - own - redis_cpu) / wall, 2),
        },
        "phases": {},
    }
    for name, taken in samples.items():
        entry: dict[str, Any] = {"ms": summary_ms([s.total_ns for s in taken])}
        for extra in sorted({k for s in taken for k in s.extra}):
            values = [s.extra[extra] for s in taken if s.extra.get(extra, -1) >= 0]
            if extra == "server_us":
                entry["server_us"] = {
                    "p50": percentile(values, 0.5),
                    "p99": percentile(values, 0.99),
                    "found": len(values),
                }
            else:
                entry[extra] = summary_ms(values)
        step_names = list(dict.fromkeys(k for s in taken for k in s.steps))
        if step_names:
            entry["steps_p50_ms"] = {
                step: percentile([s.steps.get(step, 0) for s in taken], 0.5) / 1e6
                for step in step_names
            }
        result["phases"][name] = entry
    print_size(result)
    return result


# -- reporting -----------------------------------------------------------------------------

LABELS = {
    "ping": "PING round trip",
    "match": "offer_match.lua alone (client)",
    "recording": "available -> redirect (Recording)",
    "twilio": "available -> redirect invoked (Twilio)",
    "statelog": "available -> redirect (+SQLite state log)",
    "redirect_first": "proposal: state log after redirect (+SQLite)",
}


def row(label: str, s: dict[str, float], ping_p50: float, cpu: dict[str, float] | None) -> str:
    return (
        f"  {label:<44} {s['p50']:8.3f} {s['p90']:8.3f} {s['p99']:8.3f} {s['max']:8.3f}"
        f"   {s['p50'] / ping_p50:6.1f}x" + (f"   {cpu['p50']:7.3f}" if cpu else "")
    )


def print_size(result: dict[str, Any]) -> None:
    phases = result["phases"]
    ping = phases["ping"]["ms"]["p50"]
    print(f"  {'wall ms':<44} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}   p50/PING   CPU p50")
    for name, entry in phases.items():
        print(row(LABELS.get(name, name), entry["ms"], ping, entry.get("cpu")))
        if name == "twilio":
            print(row("  ... -> stub received the POST", entry["stub_received"], ping, None))
            print(row("  ... -> redirect() returned", entry["redirect_returned"], ping, None))
        if "command_returned" in entry and name != "twilio":
            print(row("  ... -> adviser_command returned", entry["command_returned"], ping, None))
        if "server_us" in entry:
            s = entry["server_us"]
            print(
                f"    server-side (SLOWLOG) us: p50 {s['p50']} p99 {s['p99']} ({s['found']} found)"
            )
    steps = phases.get("recording", {}).get("steps_p50_ms")
    if steps:
        print(
            "  before the redirect (recording, p50 ms): "
            + ", ".join(f"{k.strip()} {v:.3f}" for k, v in steps.items())
        )
    cpu = result["cpu_cores"]
    print(
        f"  CPU (cores) during sampling: bench {cpu['bench_process']}, redis {cpu['redis']}, "
        f"others {cpu['others']}"
    )


def print_growth(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """p50 at the largest size over p50 at the smallest, measured before and after it."""
    if len(sizes) < 2:
        return []
    high = max(sizes, key=lambda r: r["size"])
    lows = [r for r in sizes if r["size"] == min(s["size"] for s in sizes)]
    return [growth(low, high) for low in lows]


def growth(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "from": low["size"],
        "from_pass": low["pass"],
        "to": high["size"],
        "phases": {},
    }
    when = "before" if low["pass"] == "up" else "after"
    print(
        f"\n== growth from {low['size']:,} (measured {when}) to {high['size']:,} waiting calls, "
        "p50 ratios =="
    )
    ping_low = low["phases"]["ping"]["ms"]["p50"]
    ping_high = high["phases"]["ping"]["ms"]["p50"]
    for name in low["phases"]:
        a, b = low["phases"][name]["ms"]["p50"], high["phases"][name]["ms"]["p50"]
        normalised = (b / ping_high) / (a / ping_low)
        result["phases"][name] = {"raw": b / a, "ping_normalised": normalised}
        print(f"  {LABELS.get(name, name):<44} x{b / a:5.2f} raw, x{normalised:5.2f} per PING")
    if "server_us" in low["phases"]["match"]:
        a, b = (
            low["phases"]["match"]["server_us"]["p50"],
            high["phases"]["match"]["server_us"]["p50"],
        )
        if a > 0:
            result["match_server_side"] = b / a
            print(f"  {'offer_match.lua server-side (SLOWLOG)':<44} x{b / a:5.2f}")
    ratio = high["size"] / low["size"]
    print(
        f"  (n grew x{ratio:,.0f}: linear cost would be x{ratio:,.0f}; "
        f"log2 n grew x{math.log2(high['size']) / math.log2(low['size']):.2f})"
    )
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/7",
        help="a database of its own: it is FLUSHED before and after (default: %(default)s)",
    )
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(x) for x in text.split(",") if x],
        default=[1000, 10000, 100000],
        help="waiting calls, comma-separated (filled incrementally)",
    )
    parser.add_argument("--advisers", type=int, default=500)
    parser.add_argument("--samples", type=int, default=300, help="per phase and size")
    parser.add_argument("--warmup", type=int, default=20, help="per phase and size, not counted")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-down",
        dest="down",
        action="store_false",
        help="do not measure the smaller sizes again after the largest (noise check)",
    )
    parser.add_argument("--no-state-log", dest="state_log", action="store_false")
    parser.add_argument(
        "--state-log-url",
        default=None,
        help="database of the state log (default: SQLite in a temporary folder; rows are left)",
    )
    parser.add_argument("--server-time", action="store_true", help="read SLOWLOG (see above)")
    parser.add_argument(
        "--stub-as-is",
        action="store_true",
        help="the stub without TCP_NODELAY (+40 ms to redirect() returning; see NoDelayH11)",
    )
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.advisers < len(PRODUCTS) or any(s < 1 for s in args.sizes):
        parser.error("need at least 9 advisers and positive sizes")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"bench.routing: sizes {args.sizes}, {args.advisers} advisers, {args.samples} samples "
        f"(+{args.warmup} warm-up) per phase, loop {args.loop}, load {os.getloadavg()[0]:.2f}, "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    started = time.monotonic()
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop if args.loop == "uvloop" else None)
    with runner:
        result = runner.run(run(args))
    result["growth"] = print_growth(result["sizes"])
    result["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    result["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "loadavg_end": os.getloadavg(),
    }
    result["seconds"] = round(time.monotonic() - started, 1)
    print(f"\ndone in {result['seconds']} s")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
