"""Proof under load: 3 app processes on one Redis, 10 advisers, 300 calls at once.

The app runs as it does in production: three `uvicorn api.asgi:app` processes sharing one real
Redis database and one PostgreSQL schema, moving calls with the real twilio SDK against the
Twilio stub (a process of its own). This test plays Twilio (callers through the menu, random
hang-ups, the REST redirects followed to /twilio/connect, the advisers' phones ringing, answered
or not, talking) and the advisers at their desks (back to available after a missed call; some end
their wrap-up early). Every request goes to a random instance.

Afterwards, with exact counts, from this test's own records, the stub's request log, Redis and
the database: every call ended exactly once (connected or hung up); no call was given to two
advisers; no adviser held two calls (their phone never rang for a second call before the first
ended); every offer made was delivered once and every unanswered offer was followed by another
one (or the caller had gone); nothing is left in Redis.

The randomness is seeded; the seed is printed. Repeat a run with KCC_ROUTING_PROOF_SEED=<seed>
(the timing still differs from run to run); KCC_ROUTING_PROOF_CALLS=<n> for a smaller run. A
failed run leaves story.json (every call, redirect, ring and state change) in its tmp_path.

The clock is KCC_NOW (a Tuesday morning, open; it runs on from there, so wrap-ups and offers still
expire). Each run takes a Redis database of its own (a lock key among 13-15) and a PostgreSQL
schema of its own, so two test suites running at once on one machine do not meet.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from api.database.engine import make_engine
from ivr.records import CallRecord
from routing import keys
from routing.adviser_history import AdviserStateChange
from tests.conftest import POSTGRES_SERVICE, POSTGRES_UP, REDIS_SERVICE, REDIS_UP, need_service
from tests.support import staff
from tests.support.call_simulator import (
    Desk,
    OfferSeen,
    Plan,
    Process,
    Redirect,
    Simulation,
    clock_offsets,
    cpu_seconds,
    parse_stub_requests,
    plain_client,
    start_app,
    start_stub,
    wait_healthy,
)
from tests.support.clock import OPEN_TUESDAY
from tests.support.database import create_schema, schema_url
from tests.support.servers import free_port
from tests.support.staff import add_staff, signed_in

# Redis databases this test may take (emptied first); one run holds one through a lock key, so
# two runs at once (two people's test suites on one machine) do not share state.
REDIS_BASE = os.environ.get("KCC_TEST_ROUTING_REDIS", "redis://127.0.0.1:6379")
REDIS_DATABASES = (13, 14, 15)
LOCK = "routing-proof:lock"
POSTGRES_URL = os.environ.get(
    "KCC_TEST_ROUTING_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# A schema of its own in the shared database (per run): the other database tests drop every
# table of the default schema when they start and end, and must not do that under these
# processes.
SCHEMA = f"routing_proof_{os.getpid()}"
INSTANCES = 3
AUTH_TOKEN = "routing-proof-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "1" * 32
SECRET_KEY = "routing-proof-secret-key-0123456789abcdef0123456789"
PASSWORD = "routing-proof-password"
RUN_SECONDS = 120  # a bound, for a stuck run: it takes 45-60 s on 2 cores

# Every product callers use has advisers; some advisers have several skills, one has all.
ADVISERS = {
    "adviser01": ["vog_np", "vog_rp"],
    "adviser02": ["vog_np"],
    "adviser03": ["vog_np", "gva"],
    "adviser04": ["vog_rp", "gva"],
    "adviser05": ["vog_np", "name_change"],
    "adviser06": ["pardon", "boa", "vog_np"],
    "adviser07": ["vog_rp"],
    "adviser08": ["gva", "name_change", "pardon"],
    "adviser09": ["boa", "vog_np", "vog_rp"],
    "adviser10": ["vog_np", "vog_rp", "gva", "name_change", "pardon", "boa"],
}
# An adviser for a product nobody calls: measures each instance's clock.
PROBE = staff.adviser("clockprobe", PASSWORD, skills=["track"])
SUPERVISOR = staff.supervisor("supervisor", PASSWORD)


@dataclass
class System:
    redis_url: str
    public_url: str
    ports: list[int]
    stub_url: str
    apps: list[Process]
    stub: Process
    db: Engine


def _take_redis_database() -> tuple[redis.Redis, str]:
    """A Redis database no other run of this test is using, emptied; waits up to 3 minutes."""
    token = f"{os.getpid()}-{time.time()}"
    deadline = time.monotonic() + 180
    while True:
        for number in REDIS_DATABASES:
            url = f"{REDIS_BASE}/{number}"
            store = redis.Redis.from_url(url)
            if store.set(LOCK, token, nx=True, ex=600):
                _empty(store)
                return store, url
            store.close()
        if time.monotonic() > deadline:
            pytest.fail(f"Redis databases {REDIS_DATABASES} stayed locked by other runs ({LOCK})")
        time.sleep(1)


def _empty(store: redis.Redis) -> None:
    """Every key but the lock."""
    doomed = [k for k in store.scan_iter(count=1000) if k != LOCK.encode()]
    for i in range(0, len(doomed), 500):
        store.unlink(*doomed[i : i + 500])


def _reset_schema() -> None:
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            # Schemas of runs that were killed before they could clean up.
            for (name,) in connection.execute(
                text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'routing_proof_%'")
            ):
                pid = name.removeprefix("routing_proof_")
                if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                    connection.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    finally:
        admin.dispose()


def _drop_schema() -> None:
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    finally:
        admin.dispose()


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """The stub and 3 app processes on a flushed Redis database and a fresh schema."""
    need_service(REDIS_UP, REDIS_SERVICE)
    need_service(POSTGRES_UP, POSTGRES_SERVICE)
    store, redis_url = _take_redis_database()
    db = make_engine(schema_url(POSTGRES_URL, SCHEMA))
    processes: list[Process] = []
    try:
        _reset_schema()
        create_schema(db)  # here, not in three processes
        accounts = [
            staff.adviser(name, PASSWORD, skills=skills) for name, skills in ADVISERS.items()
        ]
        accounts += [PROBE, SUPERVISOR]
        with ThreadPoolExecutor(4) as pool:  # argon2 hashing takes a while and frees the GIL
            list(pool.map(lambda account: add_staff(db, account), accounts))
        stub, stub_url = start_stub(tmp_path, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
        processes.append(stub)
        ports = [free_port() for _ in range(INSTANCES)]
        public_url = f"http://127.0.0.1:{ports[0]}"  # one public URL for all: signed for it
        env = {
            "KCC_REDIS_URL": redis_url,
            "KCC_DATABASE_URL": schema_url(POSTGRES_URL, SCHEMA),
            "KCC_PUBLIC_URL": public_url,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "KCC_TWILIO_API_BASE": stub_url,
            "KCC_SECRET_KEY": SECRET_KEY,
            "KCC_NOW": OPEN_TUESDAY,
            "KCC_WRAP_UP_SECONDS": "1",
            "KCC_OFFER_SECONDS": "20",
            "KCC_VERIFY_MIN_SECONDS": "0",
            "KCC_LOG_LEVEL": "WARNING",
        }
        # Started together: KCC_NOW's clock starts when each process starts (see the report).
        apps = [start_app(tmp_path, f"app{i + 1}", port, env) for i, port in enumerate(ports)]
        processes.extend(apps)
        wait_healthy([(app, f"http://127.0.0.1:{p}") for app, p in zip(apps, ports, strict=True)])
        yield System(redis_url, public_url, ports, stub_url, apps, stub, db)
    finally:
        for process in reversed(processes):
            process.stop()
        db.dispose()
        _drop_schema()
        _empty(store)
        store.delete(LOCK)
        store.close()


def _error_lines(process: Process) -> list[str]:
    found = []
    for line in process.output().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "Traceback" in line or "ERROR" in line:
                found.append(line)
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            found.append(line)
    return found


def _warnings(process: Process) -> Counter[str]:
    found: Counter[str] = Counter()
    for line in process.output().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") == "warning":
            found[str(entry.get("message"))] += 1
    return found


def _fallbacks(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("kcc_fallbacks_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _cpu(
    system: System, store: redis.Redis, before: dict[str, Any] | None = None
) -> dict[str, Any]:
    info = store.info("cpu")
    now: dict[str, Any] = {
        "apps": [cpu_seconds(app.popen.pid) for app in system.apps],
        "stub": cpu_seconds(system.stub.popen.pid),
        "driver": time.process_time(),
        "redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
    }
    if before is None:
        return now
    return {
        "apps": [a - b for a, b in zip(now["apps"], before["apps"], strict=True)],
        **{k: now[k] - before[k] for k in ("stub", "driver", "redis")},
    }


def _scan(store: redis.Redis, pattern: str) -> list[str]:
    return sorted(str(k) for k in store.scan_iter(match=pattern, count=1000))


def _dump(
    path: Path,
    sim: Simulation,
    redirects: list[Redirect],
    changes: Sequence[AdviserStateChange],
    records: Sequence[CallRecord],
    started: float,
) -> None:
    """Everything that happened, for reading a failure (the test prints where it is)."""
    story = {
        "calls": [asdict(c) for c in sim.calls],
        "redirects": [asdict(r) for r in redirects],
        "rings": [asdict(r) for r in sim.phones.rings],
        "state_changes": [c.model_dump(mode="json") for c in changes],
        "call_records": [r.model_dump(mode="json") for r in records],
        "started": started,
    }
    path.write_text(json.dumps(story, indent=1, default=str))
    print(f"  the whole story: {path}")


@dataclass
class Observed:
    """Everything looked at after the run, besides the simulation's own records."""

    redirects: list[Redirect]  # every REST redirect the app sent, as the stub answered it
    changes: Sequence[AdviserStateChange]
    records: Sequence[CallRecord]
    offers_made: int  # the offer counter in Redis
    waiting: list[dict[str, Any]]  # GET /api/queue
    advisers: list[dict[str, Any]]  # GET /api/advisers
    metrics: list[str]  # GET /metrics of each instance

    def delivered(self, call_sid: str | None = None) -> list[Redirect]:
        return [
            r
            for r in self.redirects
            if r.status == 200 and (call_sid is None or r.call_sid == call_sid)
        ]


async def _observe(
    system: System,
    sim: Simulation,
    store: redis.Redis,
    http: httpx.AsyncClient,
    plain: httpx.AsyncClient,
) -> Observed:
    # Advisers still in wrap-up become available on an instance's timer (1 s): wait for it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if {store.hget(keys.adviser(n), "state") for n in ADVISERS} == {"available"}:
            break
        await asyncio.sleep(0.2)
    supervisor = await signed_in(http, SUPERVISOR)
    waiting = (await http.get("/api/queue", headers=supervisor)).raise_for_status().json()
    advisers = (await http.get("/api/advisers", headers=supervisor)).raise_for_status().json()
    stub_log = await sim.stub_requests(plain)
    metrics = [
        (await plain.get(f"http://127.0.0.1:{port}/metrics")).raise_for_status().text
        for port in system.ports
    ]
    # The apps write both logs in the background: wait until they stop growing (bounded).
    changes: Sequence[AdviserStateChange] = []
    records: Sequence[CallRecord] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        before = (len(changes), len(records))
        with Session(system.db) as session:
            query = select(AdviserStateChange).order_by(col(AdviserStateChange.id))
            changes = session.exec(query).all()
            records = session.exec(select(CallRecord)).all()
        if len(records) >= len(sim.calls) and (len(changes), len(records)) == before:
            break
        await asyncio.sleep(0.3)
    return Observed(
        redirects=parse_stub_requests(stub_log),
        changes=changes,
        records=records,
        offers_made=int(store.get(keys.offer_sequence()) or 0),
        waiting=waiting,
        advisers=advisers,
        metrics=metrics,
    )


def _summary(
    sim: Simulation,
    seen: Observed,
    system: System,
    ran: float,
    offsets: dict[int, float],
    cpu: dict[str, Any],
) -> str:
    calls = sim.calls
    offers = sim.offers_by_result()
    refused = len(seen.redirects) - len(seen.delivered())
    warnings: Counter[str] = Counter()
    for app in system.apps:
        warnings.update(_warnings(app))
    spread = max(offsets.values()) - min(offsets.values())
    return (
        f"routing proof: {len(calls)} calls, {len(ADVISERS)} advisers, {INSTANCES} instances: "
        f"{ran:.1f} s (instance clocks {spread:.0f} ms apart)\n"
        f"  callers: {dict(sim.outcomes())}; hung up in the menu "
        f"{sum(1 for c in calls if c.menu_hang_up_at is not None)}, while waiting "
        f"{sum(1 for c in calls if c.outcome == 'hung_up' and c.queued_at is not None)} "
        f"(of whom {offers['caller-hung-up']} while the adviser's phone rang)\n"
        f"  offers: {seen.offers_made} made, {len(seen.delivered())} redirects delivered, "
        f"{refused} refused (the caller had gone); Twilio's side: {dict(offers)}\n"
        f"  desks: {sum(d.events for d in sim.desks)} state events; "
        f"{dict(sum((d.actions for d in sim.desks), Counter()))}; refused (409) "
        f"{dict(sum((d.refused for d in sim.desks), Counter()))}\n"
        f"  call records {dict(Counter(r.outcome for r in seen.records))}; "
        f"requests per instance {sorted(sim.transport.sent.values())}\n"
        f"  CPU seconds: apps {[round(c, 1) for c in cpu['apps']]}, stub {cpu['stub']:.1f}, "
        f"this process {cpu['driver']:.1f}, redis {cpu['redis']:.1f}; "
        f"load average {os.getloadavg()[0]:.1f}\n"
        f"  app warnings {dict(warnings)}"
    )


@pytest.mark.slow
async def test_300_calls_on_3_instances_each_reach_one_adviser_or_end_cleanly(
    system: System, tmp_path: Path
) -> None:
    seed = int(os.environ.get("KCC_ROUTING_PROOF_SEED") or random.randrange(2**31))
    print(f"\nrouting proof: seed {seed} (repeat with KCC_ROUTING_PROOF_SEED={seed})")
    plan = Plan(calls=int(os.environ.get("KCC_ROUTING_PROOF_CALLS") or 300))
    desks = [
        Desk(name, skills, presses_ready=i % 2 == 0)
        for i, (name, skills) in enumerate(ADVISERS.items())
    ]
    sim = Simulation(
        public_url=system.public_url,
        stub_url=system.stub_url,
        auth_token=AUTH_TOKEN,
        ports=system.ports,
        desks=desks,
        password=PASSWORD,
        plan=plan,
        seed=seed,
    )
    sim.make_calls()
    store = redis.Redis.from_url(system.redis_url, decode_responses=True)
    async with sim, sim.client() as http, plain_client() as plain:
        probe = await signed_in(http, PROBE)
        offsets = await clock_offsets(system.ports, probe)
        cpu_before = _cpu(system, store)
        started = time.monotonic()
        finished = await sim.run(http, timeout=RUN_SECONDS)
        ran = time.monotonic() - started
        cpu = _cpu(system, store, cpu_before)
        seen = await _observe(system, sim, store, http, plain)
    print(_summary(sim, seen, system, ran, offsets, cpu))
    _dump(tmp_path / "story.json", sim, seen.redirects, seen.changes, seen.records, started)

    unfinished = [c for c in sim.calls if c.outcome is None]
    assert finished, f"{len(unfinished)} callers still waiting after {RUN_SECONDS} s: " + ", ".join(
        f"{c.sid} ({c.product}, {len(c.offers)} offers)" for c in unfinished[:10]
    )
    _check_nothing_failed(sim, seen, system)
    _check_every_call_ended_once(sim, seen)
    _check_offers(sim, seen)
    _check_one_call_per_adviser(sim)
    _check_database(sim, seen)
    _check_nothing_left(sim, seen, store)
    store.close()


def _check_nothing_failed(sim: Simulation, seen: Observed, system: System) -> None:
    problems = [f"{c.sid}: {e}" for c in sim.calls for e in c.errors] + sim.anomalies
    assert problems == [], "\n".join(problems[:30])
    for app in system.apps:
        errors = _error_lines(app)
        assert errors == [], f"{app.name} logged errors:\n" + "\n".join(errors[:10])
    assert [_fallbacks(m) for m in seen.metrics] == [0.0] * INSTANCES, "an apology was answered"


def _check_every_call_ended_once(sim: Simulation, seen: Observed) -> None:
    """Connected or hung up, once; the call records say the same."""
    outcomes = sim.outcomes()
    assert outcomes["connected"] + outcomes["hung_up"] == len(sim.calls) == sim.plan.calls
    connected = {c.sid for c in sim.calls if c.outcome == "connected"}
    for call in sim.calls:
        assert call.ended_at is not None, call.sid
        assert (call.adviser is not None) == (call.sid in connected), call.sid
    assert sorted(r.call_sid for r in seen.records) == sorted(c.sid for c in sim.calls)
    by_outcome: dict[str, set[str]] = defaultdict(set)
    for record in seen.records:
        by_outcome[record.outcome].add(record.call_sid)
    assert by_outcome.pop("answered", set()) == connected
    ringing = [c for c in sim.calls if c.hangs_up_ringing]
    assert ringing, "no caller hung up while an adviser's phone rang"
    for call in ringing:
        assert call.outcome == "hung_up" and call.offers[-1].result == "caller-hung-up", call
    in_menu = {c.sid for c in sim.calls if c.menu_hang_up_at is not None}
    assert by_outcome.pop("abandoned_in_menu", set()) == in_menu
    # Hung up while waiting (or while ringing): abandoned_in_queue - or left_queue when the
    # entry was gone before the status callback came: taken out by the <Enqueue> action
    # (QueueResult=hangup, which Twilio may deliver first), or by routing when Twilio refused to
    # move the call. (Abandonment reports undercount by the left_queue ones; see the report.)
    assert set(by_outcome) <= {"abandoned_in_queue", "left_queue"}, by_outcome.keys()
    waited = {c.sid for c in sim.calls if c.outcome == "hung_up"} - in_menu
    assert set().union(*by_outcome.values()) == waited


def _check_offers(sim: Simulation, seen: Observed) -> None:
    """Every offer made was one redirect of one call, followed in order by Twilio's side."""
    calls_of: dict[str, set[str]] = defaultdict(set)
    for redirect in seen.redirects:
        calls_of[redirect.offer_id].add(redirect.call_sid)
    assert len(calls_of) == seen.offers_made, "an offer without a redirect, or the reverse"
    assert all(len(sids) == 1 for sids in calls_of.values()), "one offer moved two calls"
    delivered = [r.offer_id for r in seen.delivered()]
    assert len(delivered) == len(set(delivered)), "a redirect was delivered twice"
    for call in sim.calls:
        assert call.ended_at is not None
        # Once answered, nothing moves the call again: not to a second adviser, not back. Once
        # its final status callback has been answered, the call is not offered to anyone.
        end = call.answered_at or call.ended_at
        late = [r.offer_id for r in seen.redirects if r.call_sid == call.sid and r.at > end]
        assert late == [], f"{call.sid} ({call.outcome}) was offered again: offers {late}"
        sent = [r.offer_id for r in seen.delivered(call.sid)]
        followed = [o.offer_id for o in call.offers]
        # Followed in the order sent; the only one not followed raced the caller's hang-up.
        assert sent[: len(followed)] == followed, (call.sid, sent, followed)
        skipped = sent[len(followed) :]
        assert skipped == [] or (len(skipped) == 1 and call.outcome == "hung_up"), call.sid
        # Twilio refused a redirect only once the caller had gone.
        for redirect in seen.redirects:
            if redirect.call_sid == call.sid and redirect.status != 200:
                assert call.gone_at is not None and redirect.at > call.gone_at, redirect
        # A call is offered again only after its last offer ended (it is with one adviser at a
        # time), and every unanswered offer is followed by another unless the caller gave up.
        for previous, following in itertools.pairwise(call.offers):
            assert previous.settled_at is not None, (call.sid, previous)
            assert following.redirect_at > previous.settled_at, (call.sid, previous, following)
        for i, offer in enumerate(call.offers):
            if offer.result == "no-answer":
                assert i + 1 < len(call.offers) or call.outcome == "hung_up", call.sid
    assert sim.offers_by_result()["withdrawn"] == 0, "a delivered offer was gone at connect"


def _check_one_call_per_adviser(sim: Simulation) -> None:
    """An adviser's phone never rang for a call before their previous call had ended."""
    assert sim.phones.violations == [], sim.phones.violations[:10]
    assert sim.phones.busy == {}, "a phone still rings or talks"
    offers_of: dict[str, list[OfferSeen]] = defaultdict(list)
    for call in sim.calls:
        for offer in call.offers:
            if offer.adviser is not None:
                offers_of[offer.adviser].append(offer)
    assert set(offers_of) == set(ADVISERS), "an adviser never got a call"
    for adviser, offers in offers_of.items():
        offers.sort(key=lambda o: o.redirect_at)
        for previous, following in itertools.pairwise(offers):
            # The app sent the next call to this adviser only after the last one had ended.
            assert previous.settled_at is not None, (adviser, previous)
            assert following.redirect_at > previous.settled_at, (adviser, previous, following)


def _check_database(sim: Simulation, seen: Observed) -> None:
    """The advisers' state log agrees: one on_call per connected call, with its adviser."""
    on_call: dict[str | None, list[str]] = defaultdict(list)
    offered: Counter[str | None] = Counter()
    wrap_ups: Counter[str | None] = Counter()
    missed = 0
    for change in seen.changes:
        if change.state == "on_call":
            on_call[change.call_sid].append(change.adviser)
        elif change.state == "offered":
            offered[change.call_sid] += 1
        elif change.state == "wrap_up":
            wrap_ups[change.call_sid] += 1
        elif change.state == "missed":
            missed += 1
    connected = [c for c in sim.calls if c.outcome == "connected"]
    assert dict(on_call) == {c.sid: [c.adviser] for c in connected}, "on_call rows differ"
    assert wrap_ups == Counter(c.sid for c in connected)
    assert offered == Counter(r.call_sid for r in seen.delivered())
    assert missed == sim.offers_by_result()["no-answer"]


def _check_nothing_left(sim: Simulation, seen: Observed, store: redis.Redis) -> None:
    """No waiting calls, offers or sessions in Redis; every adviser available again."""
    assert seen.waiting == []
    # The empty scans below look at the store the instances used: every call's keys are there.
    assert sim.calls
    call_keys = _scan(store, keys.session("*"))
    assert {keys.ended(c.sid) for c in sim.calls} <= set(call_keys)
    for product in sim.plan.products:
        assert store.zcard(keys.queue(product)) == 0, product
    assert _scan(store, keys.queue_entry("*")) == []
    assert _scan(store, keys.offer("*")) == []
    assert _scan(store, keys.call_offer("*")) == []
    assert store.zcard(keys.offer_deadlines()) == 0
    sessions = [k for k in call_keys if re.fullmatch(r".*:call:CA\w+", k)]
    assert sessions == []
    assert len(_scan(store, keys.ended("*"))) == len(sim.calls)
    answered = {k.split(":")[2] for k in _scan(store, keys.call_answered("*"))}
    assert answered == {c.sid for c in sim.calls if c.outcome == "connected"}
    states = {a["name"]: a["status"] for a in seen.advisers if a["name"] in ADVISERS}
    assert states == dict.fromkeys(ADVISERS, "available"), states
    for product in sim.plan.products:
        idle = set(store.zrange(keys.available(product), 0, -1))
        assert idle == {n for n, skills in ADVISERS.items() if product in skills}, product
