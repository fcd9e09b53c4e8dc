"""A smoke run of the report benchmark (bench/reports.py) at a tiny size, on a SQLite file and on
the real PostgreSQL (a schema of its own): it fills, times and reports without an error, and the
month it times holds the calls it should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from api.database.engine import make_engine
from tests.conftest import POSTGRES_SERVICE, POSTGRES_UP, POSTGRES_URL, need_service
from tests.support.database import schema_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RECORDS = 3000


@pytest.fixture
def postgres_bench_url() -> Iterator[str]:
    """POSTGRES_URL with an empty schema of the benchmark's own, dropped afterwards."""
    need_service(POSTGRES_UP, POSTGRES_SERVICE)
    schema = f"bench_reports_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        yield schema_url(POSTGRES_URL, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def test_smoke_run_times_a_month_by_product_on_sqlite_and_postgresql(
    tmp_path: Path, postgres_bench_url: str
) -> None:
    out = tmp_path / "bench.json"
    command = [
        *(sys.executable, "-m", "bench.reports", "--records", str(RECORDS), "--runs", "2"),
        *("--database-url", postgres_bench_url, "--json-out", str(out)),
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr

    timings = json.loads(out.read_text())
    assert [t["database"] for t in timings] == ["sqlite", "postgresql"]
    for timing in timings:
        assert timing["records"] == RECORDS
        # one month of 13, the same generated calls on both databases
        assert RECORDS / 20 < timing["month_calls"] < RECORDS / 8
        assert 0 < timing["fastest_seconds"] <= timing["median_seconds"]
        assert timing["without_index_seconds"] > 0
    assert timings[0]["month_calls"] == timings[1]["month_calls"]
    assert "report by=product for 2026-12-01 .. 2026-12-31" in run.stdout
