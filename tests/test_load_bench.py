"""The load test of the whole path (bench/load.py) cannot rot: a short run of it, with its own
checks (every call answered or abandoned and recorded, none put through twice, no adviser with
two calls, every offer on its desk, nothing left waiting in Redis), at 5 calls a second for 5 s
against two app processes on the real Redis and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    POSTGRES_SERVICE,
    POSTGRES_UP,
    POSTGRES_URL,
    REDIS_SERVICE,
    REDIS_UP,
    REDIS_URL,
    need_service,
)
from tests.support.paths import ROOT
from tests.support.slow import require_slow

# A database of its own: the bench flushes it.
LOAD_REDIS_URL = f"{REDIS_URL.rsplit('/', 1)[0]}/10"


@pytest.mark.slow
def test_a_short_load_run_answers_every_call_once_with_no_errors(tmp_path: Path) -> None:
    need_service(REDIS_UP, REDIS_SERVICE)
    need_service(POSTGRES_UP, POSTGRES_SERVICE)
    require_slow("the load bench (two app processes)")
    out = tmp_path / "load.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load",
            "--duration=5",
            "--rate=5",
            "--advisers=20",
            "--desks=24",
            "--idle=1",
            "--drain=15",
            f"--redis-url={LOAD_REDIS_URL}",
            f"--database-url={POSTGRES_URL}",
            f"--json-out={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())["result"]
    placed = result["placed"]
    assert placed >= 5, result  # Poisson arrivals at 5/s for 5 s: 25 expected
    outcomes = result["outcomes"]
    assert outcomes.get("answered", 0) + outcomes.get("abandoned", 0) == placed, outcomes
    checks = ("errors", "lost", "double", "unfinished")
    assert {name: result[name] for name in checks} == dict.fromkeys(checks, 0)
    assert result["call_records"] == placed
    assert result["answered_in_records"] == outcomes.get("answered", 0)
    assert result["offers_unseen_by_desk"] == 0
    assert result["left_in_redis"] == {
        "waiting": 0,
        "queue_entries": 0,
        "advisers_not_available": {},
    }
    # every webhook of a whole call was made: voice, menu, identity, queue, offer, conference,
    # the adviser's leg, the end of the conversation, the survey and the status callback
    assert {
        "voice",
        "step (menu)",
        "step (application number)",
        "step (date of birth)",
        "wait",
        "connect",
        "queue-result",
        "conference-events",
        "adviser-status",
        "dial-result",
        "survey",
        "status",
    } <= set(result["routes"])
