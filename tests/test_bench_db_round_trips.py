"""The database round-trip bench (bench/db_round_trips.py) cannot rot, and a verified call keeps
its four PostgreSQL round trips: the identity check's SELECT, and the record's BEGIN, INSERT and
COMMIT (eight with a pre-ping and a transaction around every read)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.db_round_trips import main
from tests.conftest import (
    POSTGRES_SERVICE,
    POSTGRES_UP,
    POSTGRES_URL,
    REDIS_SERVICE,
    REDIS_UP,
    REDIS_URL,
    need_service,
)


def test_a_verified_call_costs_four_postgresql_round_trips(tmp_path: Path) -> None:
    need_service(POSTGRES_UP, POSTGRES_SERVICE)
    need_service(REDIS_UP, REDIS_SERVICE)
    out = tmp_path / "trips.json"
    # Calls first: psycopg prepares a statement at its fifth use on a connection (one round trip
    # more, once), and the pool's connections take turns.
    argv = ["--calls", "5", "--warmup", "10", "--reads", "0", "--redis-url", REDIS_URL]
    assert main([*argv, "--database-url", POSTGRES_URL, "--json-out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["round_trips"] == 20
    assert result["new_connections"] == 0
