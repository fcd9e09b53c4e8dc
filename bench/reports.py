"""Report benchmark: a month's report by product over a million call records.

    .venv/bin/python -m bench.reports                       # SQLite file in a temporary folder
    .venv/bin/python -m bench.reports --database-url postgresql+psycopg://.../kcc_bench
    .venv/bin/python -m bench.reports --records 2000 --runs 1     # smoke run

Fills each database (a SQLite file, and the PostgreSQL database of --database-url when given)
with --records call records spread evenly over 13 months (2025-12-01 .. 2026-12-31, Amsterdam
time), written in the order the calls came (as the service writes them), in a realistic mix:
mostly weekday office hours, ten products (VOG NP the most), calls that end in the menu or in
self-service, answered calls with wait, talk and wrap-up times, abandoned calls, callbacks,
transfers and survey marks. SQLite gets the rows by executemany in batches,
PostgreSQL by COPY. The schema is made by the migrations (`kcc db upgrade`), so the indexes are
the release's own.

Then it times the report a supervisor asks for most, `by=product` for one month (December 2026),
--runs times after one warm-up run, and prints the median, the fastest and the slowest; then the
same once more without the index on started_at (dropped and made again), so the figure the index
buys is printed beside it. --json-out FILE writes the figures as JSON.

The PostgreSQL database must have no call records (a database of the benchmark's own), unless
--reset: then its call records are deleted first.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert, select, text

from api.database.engine import make_engine
from api.database.schema import upgrade
from ivr.records import CallRecord
from ivr.reports import ReportQuery, run_report

ZONE = ZoneInfo("Europe/Amsterdam")
FIRST_DAY = datetime(2025, 12, 1, tzinfo=ZONE)
DAYS = 396  # 2025-12-01 up to and including 2026-12-31: 13 months
MONTH = ("2026-12-01", "2026-12-31")
STARTED_AT_INDEX = "ix_call_records_started_at"
BATCH = 20_000

PRODUCTS = [
    ("vog_np", 50), ("vog_rp", 15), ("gva", 5), ("name_change", 4), ("pardon", 3), ("boa", 4),
    ("wpbr", 4), ("wwm", 3), ("track", 2), ("general", 10),
]  # fmt: skip
VOG_NP_THEMES = [("status", 40), ("procedure", 25), ("objection", 10), ("childcare", 10)]
WRAP_UP_CODES = ["informed", "status_given", "referred", "complaint", "other"]
ADVISERS = [f"adviser{n:02d}" for n in range(40)]
HOUR_WEIGHTS = [0] * 8 + [8, 14, 14, 12, 10, 11, 10, 8, 5] + [0] * 7  # 08:00-17:00


@dataclass
class Timing:
    database: str
    records: int
    fill_seconds: float
    median_seconds: float
    fastest_seconds: float
    slowest_seconds: float
    without_index_seconds: float
    month_calls: int


def _weighted(rng: random.Random, items: list[tuple[str, int]]) -> str:
    return rng.choices([i for i, _ in items], weights=[w for _, w in items])[0]


def generate(count: int, seed: int = 13) -> Iterator[dict[str, Any]]:
    """`count` call records over the 13 months, the same for the same seed, in the order the
    service writes them: as the calls come (by started_at), so a month's rows lie together."""
    rng = random.Random(seed)
    days = [FIRST_DAY + timedelta(days=n) for n in range(DAYS)]
    day_weights = [1 if day.weekday() < 5 else 0.05 for day in days]
    hours = list(range(24))
    starts = []
    for day in rng.choices(days, weights=day_weights, k=count):
        hour = rng.choices(hours, weights=HOUR_WEIGHTS)[0] if day.weekday() < 5 else 11
        local = datetime(day.year, day.month, day.day, hour, rng.randrange(60), tzinfo=ZONE)
        starts.append(local.astimezone(UTC) + timedelta(seconds=rng.randrange(60)))
    starts.sort()
    for n, started in enumerate(starts):
        yield _record(rng, n, started)


def _record(rng: random.Random, n: int, started: datetime) -> dict[str, Any]:
    product = _weighted(rng, PRODUCTS)
    theme = _weighted(rng, VOG_NP_THEMES) if product == "vog_np" else None
    row: dict[str, Any] = {
        "call_sid": f"CA{n:032x}",
        "started_at": started,
        "flow": "kcc",
        "flow_version": "0123456789abcdef",
        "language": "nl" if rng.random() < 0.9 else "en",
        "product": product,
        "theme": theme,
        "path": ["main_menu=1"],
        "verification": "unverified",
        "self_service": False,
        "call_status": "completed",
        "queued_at": None,
        "hold_seconds": 0,
        "answered_at": None,
        "adviser": None,
        "wait_seconds": None,
        "talk_seconds": None,
        "wrap_up_seconds": None,
        "wrap_up_code": None,
        "hung_up_by": "caller",
        "abandoned": False,
        "callback_requested": False,
        "callback_made_at": None,
        "transfer_mode": None,
        "transfer_target": None,
        "survey_score": None,
    }
    draw = rng.random()
    seconds = rng.randint(20, 90)  # in the menu
    if draw < 0.08:
        row.update(outcome="abandoned_in_menu", product=None, theme=None)
    elif draw < 0.18:
        row.update(outcome="ended_by_flow", self_service=theme == "status", hung_up_by="system")
    else:
        queued = started + timedelta(seconds=seconds)
        wait = rng.expovariate(1 / 40)
        row.update(queued_at=queued, wait_seconds=round(wait, 1))
        if draw < 0.30:
            row.update(outcome="abandoned_in_queue", abandoned=True)
            seconds += int(wait)
        elif draw < 0.33:
            row.update(outcome="callback", callback_requested=True, abandoned=True)
            seconds += int(wait)
        else:
            talk = int(rng.lognormvariate(5.3, 0.5))
            row.update(
                outcome="answered",
                answered_at=queued + timedelta(seconds=wait),
                adviser=rng.choice(ADVISERS),
                talk_seconds=talk,
                wrap_up_seconds=rng.randint(10, 120),
                wrap_up_code=rng.choice(WRAP_UP_CODES),
                hung_up_by="adviser" if rng.random() < 0.5 else "caller",
                hold_seconds=rng.choice([0, 0, 0, 30, 60]),
            )
            if rng.random() < 0.08:
                row.update(transfer_mode="cold", transfer_target="department:wwm")
            if rng.random() < 0.2:
                row.update(survey_score=rng.randint(1, 10))
            seconds += int(wait) + talk
    row["ended_at"] = started + timedelta(seconds=seconds)
    return row


# -- filling -------------------------------------------------------------------------------------

COLUMNS = [c.name for c in CallRecord.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]


def fill(engine: Engine, count: int) -> float:
    began = time.perf_counter()
    rows = generate(count)
    if engine.dialect.name == "postgresql":
        _copy(engine, rows)
    else:
        table = CallRecord.__table__  # type: ignore[attr-defined]
        with engine.begin() as connection:
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) == BATCH:
                    connection.execute(insert(table), batch)
                    batch = []
            if batch:
                connection.execute(insert(table), batch)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE call_records" if _pg(engine) else "ANALYZE"))
    return time.perf_counter() - began


def _pg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _copy(engine: Engine, rows: Iterator[dict[str, Any]]) -> None:
    raw = engine.raw_connection()
    try:
        cursor: Any = raw.cursor()
        with cursor.copy(f"COPY call_records ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                values = [row[name] for name in COLUMNS]
                values[COLUMNS.index("path")] = json.dumps(row["path"])
                copy.write_row(values)
        raw.commit()
    finally:
        raw.close()


# -- timing --------------------------------------------------------------------------------------


def time_report(engine: Engine, runs: int) -> tuple[list[float], int]:
    query = ReportQuery.parse(*MONTH, by="product")
    report = run_report(engine, query, ZONE)  # warm-up: the cache as a second request finds it
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        run_report(engine, query, ZONE)
        times.append(time.perf_counter() - began)
    return times, report.total.calls


def time_without_index(engine: Engine, runs: int) -> float:
    with engine.begin() as connection:
        connection.execute(text(f"DROP INDEX {STARTED_AT_INDEX}"))
        connection.execute(text("ANALYZE call_records" if _pg(engine) else "ANALYZE"))
    try:
        times, _ = time_report(engine, runs)
    finally:
        with engine.begin() as connection:
            connection.execute(
                text(f"CREATE INDEX {STARTED_AT_INDEX} ON call_records (started_at)")
            )
            connection.execute(text("ANALYZE call_records" if _pg(engine) else "ANALYZE"))
    return statistics.median(times)


def measure(name: str, url: str, records: int, runs: int, reset: bool) -> Timing:
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            present = connection.execute(select(func.count()).select_from(CallRecord)).scalar()
            if present and not reset:
                raise SystemExit(
                    f"{name}: the database has {present} call records; give it a database of "
                    "its own, or --reset to delete them"
                )
            if present:
                connection.execute(text("DELETE FROM call_records"))
        print(f"{name}: filling {records:,} call records ...", flush=True)
        fill_seconds = fill(engine, records)
        print(f"{name}: filled in {fill_seconds:.1f} s", flush=True)
        times, calls = time_report(engine, runs)
        without = time_without_index(engine, runs)
        if reset:
            with engine.begin() as connection:
                connection.execute(text("DELETE FROM call_records"))
    finally:
        engine.dispose()
    return Timing(
        database=name,
        records=records,
        fill_seconds=round(fill_seconds, 2),
        median_seconds=round(statistics.median(times), 4),
        fastest_seconds=round(min(times), 4),
        slowest_seconds=round(max(times), 4),
        without_index_seconds=round(without, 4),
        month_calls=calls,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per database")
    parser.add_argument("--database-url", help="also PostgreSQL (a database of its own)")
    parser.add_argument("--reset", action="store_true", help="delete its call records first")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    timings = []
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.sqlite3"
        timings.append(measure("sqlite", url, args.records, args.runs, reset=False))
    if args.database_url:
        timings.append(
            measure("postgresql", args.database_url, args.records, args.runs, reset=args.reset)
        )
    print()
    print(f"report by=product for {MONTH[0]} .. {MONTH[1]}, {args.runs} runs")
    print("database    records  month's calls  fill s  median s  fastest s  slowest s  no index s")
    for t in timings:
        print(
            f"{t.database:<10} {t.records:>8,} {t.month_calls:>14,} {t.fill_seconds:>7.1f}"
            f" {t.median_seconds:>9.3f} {t.fastest_seconds:>10.3f} {t.slowest_seconds:>10.3f}"
            f" {t.without_index_seconds:>11.3f}"
        )
    if args.json_out:
        args.json_out.write_text(json.dumps([t.__dict__ for t in timings], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
