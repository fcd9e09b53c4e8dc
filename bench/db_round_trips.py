"""PostgreSQL round trips per verified call, counted on the wire.

    .venv/bin/python -m bench.db_round_trips --calls 200 \\
        --redis-url redis://127.0.0.1:6379/7 \\
        --database-url postgresql://postgres@127.0.0.1:5432/kcc_load

The app runs in this process (api.web.app.create_app, as the service builds it) with the real
Redis (the database of --redis-url is flushed), the Twilio stub of the tests (the recovery an
instance runs on an empty Redis asks it for Twilio's queues) and PostgreSQL, reached through a
counting proxy (tests/support/pg_wire.py): a round trip is the client speaking after the server
did, so a pre-ping, a BEGIN, a statement, a COMMIT or ROLLBACK and a new connection's start-up
all count, whatever SQLAlchemy's events say. The bench works in a schema of its own
(`kcc_trips_<pid>`, dropped at the end).

Each call goes through the real webhooks, signed, one after another: the voice webhook, the
VOG NP menu, "status of my application", the application number, the date of birth (the
identity check: verified), the status is read out, the caller hangs up (status callback), and
the call's record is written from the outbox before the next call. After --warmup calls (the
pool's connections made; psycopg prepares a statement at its fifth use on a connection, which
costs one round trip more, once) the round trips of --calls calls are averaged. Exit code 1 when
a call was not verified or a record is missing.

--reads N (default 1000; 0 to skip) then times the identity check's read alone, directly
against PostgreSQL (no proxy), the way main did it before this change (an engine with
`pool_pre_ping=True`, the SELECT in a transaction: reproduced here as the baseline) and the way
it is done now (routing/database_reads.py on api/database/engine.py's engine): --rounds rounds
of N reads each, the two taking turns at going first; per read the wall time and this process's
CPU time, medians over the rounds and the ratio now / before of each round.

To compare with an earlier release, run this file from a snapshot of it with the proxy copied
in (docs/BENCHMARKS.md shows the commands).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import Engine, bindparam, func, select, text
from sqlmodel import create_engine

from api.cli.demo import DEMO_APPLICATIONS
from api.cli.phone import Phone
from api.database.engine import make_engine
from api.database.schema import upgrade
from api.settings import DEFAULT_FLOW, Settings
from api.web.app import create_app
from ivr.identity.applications import Application, DateOfBirthHasher
from ivr.identity.importer import import_applications
from ivr.records import CallRecord
from routing.clock import FixedClock
from tests.support.clock import TUESDAY_MORNING
from tests.support.database import schema_url
from tests.support.pg_wire import RoundTripProxy
from tests.support.twilio_stub import TwilioStub

PUBLIC_URL = "https://ivr.example.nl"
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "0" * 32
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789"
NUMBER, BORN = "1234567", "03111985"  # a demo application (api/cli/demo_applications.csv)
STATUS_SAID = "Uw aanvraag voor een VOG is op 3 november in behandeling genomen."


async def one_call(http: httpx.AsyncClient, caller: str) -> None:
    phone = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, caller=caller)
    await phone.dial()
    await phone.press("1")  # VOG for a person
    await phone.press("1")  # the status of my application
    await phone.press(f"{NUMBER}#")
    turn = await phone.press(BORN)
    if STATUS_SAID not in turn.text:
        raise SystemExit(f"the call was not verified: {turn.text!r}")
    await phone.hang_up()


async def measure(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    with (
        RoundTripProxy(database_url) as proxy,
        TwilioStub(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as stub,
    ):
        settings = Settings(
            redis_url=args.redis_url,
            database_url=proxy.url,
            public_url=PUBLIC_URL,
            secret_key=SECRET_KEY,
            twilio_auth_token=AUTH_TOKEN,
            twilio_account_sid=ACCOUNT_SID,
            twilio_api_base=stub.base_url,
            caller_id="+31703704900",
            flow=DEFAULT_FLOW,
            verify_min_seconds=0,
        )
        app = create_app(settings, clock=FixedClock(TUESDAY_MORNING))
        services = app.state.services
        try:
            # What an instance's first tick does on an empty Redis: without the recovery's
            # marker, every identity check would also ask the database for a lock-out.
            await services.recovery.check()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
                for n in range(args.warmup):
                    await one_call(http, f"+3161000{n:04d}")
                    await services.records.flush()
                trips, connections = proxy.round_trips, proxy.connections
                for n in range(args.calls):
                    await one_call(http, f"+3162000{n:04d}")
                    await services.records.flush()  # the call's record, as the outbox writes it
                trips, connections = proxy.round_trips - trips, proxy.connections - connections
            with services.db_engine.connect() as connection:
                records = connection.execute(select(func.count()).select_from(CallRecord)).scalar()
        finally:
            await services.close()
    expected = args.warmup + args.calls
    if records != expected:
        raise SystemExit(f"{records} call records for {expected} calls")
    return {
        "calls": args.calls,
        "round_trips": trips,
        "round_trips_per_call": round(trips / args.calls, 2),
        "new_connections": connections,
    }


_APPLICATIONS = Application.__table__  # type: ignore[attr-defined]
# The identity check's statement, as ivr/identity/applications.py builds it.
_CHECK = select(
    _APPLICATIONS.c.product,
    _APPLICATIONS.c.status,
    _APPLICATIONS.c.status_date,
    _APPLICATIONS.c.dob_hmac,
).where(_APPLICATIONS.c.application_number == bindparam("number"))


def _read_before(engine: Engine) -> object:
    with engine.connect() as connection:  # a pre-ping, BEGIN, the SELECT, ROLLBACK
        return connection.execute(_CHECK, {"number": NUMBER}).first()


def _time_reads(read: Callable[[Engine], object], engine: Engine, n: int) -> tuple[float, float]:
    """Microseconds of wall time and of this process's CPU per read."""
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    for _ in range(n):
        if read(engine) is None:
            raise SystemExit("the application was not found")
    return (time.perf_counter_ns() - wall) / n / 1000, (time.process_time_ns() - cpu) / n / 1000


def time_reads(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    # Imported here: the round trips above are also counted from a snapshot of an earlier
    # release (docs/BENCHMARKS.md), which has no routing/database_reads.py (run with --reads 0).
    from routing.database_reads import autocommit_read

    def read_now(engine: Engine) -> object:
        return autocommit_read(
            engine, lambda connection: connection.execute(_CHECK, {"number": NUMBER}).first()
        )

    url = make_engine(database_url).url  # psycopg 3 for a plain postgresql:// URL
    engines = {
        "before": create_engine(url, pool_pre_ping=True),  # api/database/engine.py before
        "now": make_engine(database_url),
    }
    reads = {"before": _read_before, "now": read_now}
    rounds: list[dict[str, tuple[float, float]]] = []
    try:
        for name, engine in engines.items():
            _time_reads(reads[name], engine, 50)  # connected, statements prepared
        for r in range(args.rounds):
            order = ["before", "now"] if r % 2 == 0 else ["now", "before"]
            rounds.append(
                {name: _time_reads(reads[name], engines[name], args.reads) for name in order}
            )
    finally:
        for engine in engines.values():
            engine.dispose()

    def median(name: str, i: int) -> float:
        return round(statistics.median(one[name][i] for one in rounds), 1)

    wall_ratios = [one["now"][0] / one["before"][0] for one in rounds]
    cpu_ratios = [one["now"][1] / one["before"][1] for one in rounds]
    return {
        "reads_per_round": args.reads,
        "rounds": args.rounds,
        "wall_us": {"before": median("before", 0), "now": median("now", 0)},
        "cpu_us": {"before": median("before", 1), "now": median("now", 1)},
        "wall_ratio_now_to_before": [round(x, 3) for x in wall_ratios],
        "cpu_ratio_now_to_before": [round(x, 3) for x in cpu_ratios],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7", help="flushed")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/kcc_load")
    parser.add_argument("--reads", type=int, default=1000, help="per round; 0: no timing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json-out", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    redis.Redis.from_url(args.redis_url).flushdb()
    schema = f"kcc_trips_{os.getpid()}"
    admin = make_engine(args.database_url)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        database_url = schema_url(admin.url.render_as_string(hide_password=False), schema)
        engine = make_engine(database_url)
        try:
            upgrade(engine)  # `kcc db upgrade`
            import_applications(
                DEMO_APPLICATIONS,
                engine=engine,
                hasher=DateOfBirthHasher(SECRET_KEY),
                products={"vog_np", "vog_rp", "gva", "name_change"},
                today=date(2026, 11, 28),
            )
        finally:
            engine.dispose()
        result = asyncio.run(measure(args, database_url))
        if args.reads:
            result["identity_read"] = time_reads(args, database_url)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
    print(
        f"{result['calls']} verified calls: {result['round_trips']} PostgreSQL round trips, "
        f"{result['round_trips_per_call']:.2f} per call "
        f"({result['new_connections']} new connections)"
    )
    if "identity_read" in result:
        timed = result["identity_read"]
        print(
            f"the identity check's read, {timed['rounds']} rounds of {timed['reads_per_round']}: "
            f"wall {timed['wall_us']['before']} -> {timed['wall_us']['now']} µs, "
            f"CPU {timed['cpu_us']['before']} -> {timed['cpu_us']['now']} µs per read; "
            f"ratio now/before per round: wall {timed['wall_ratio_now_to_before']}, "
            f"CPU {timed['cpu_ratio_now_to_before']}"
        )
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
