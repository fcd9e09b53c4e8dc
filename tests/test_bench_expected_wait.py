"""A smoke run of the expected wait's benchmark (bench/expected_wait.py) against the real
Redis: the commands per fetch it reports are exactly those of each way of counting."""

from __future__ import annotations

import json
from pathlib import Path

from bench.expected_wait import main
from tests.conftest import REDIS_SERVICE, REDIS_UP, REDIS_URL, need_service


def test_smoke_run_reports_the_commands_of_each_way_of_counting(tmp_path: Path) -> None:
    need_service(REDIS_UP, REDIS_SERVICE, "the figures are the Redis server's (INFO)")
    out = tmp_path / "figures.json"
    argv = ["--redis-url", REDIS_URL, "--advisers", "50", "--fetches", "20"]
    assert main([*argv, "--json-out", str(out)]) == 0
    figures = json.loads(out.read_text())
    commands = {
        name: figures[name]["commands"] for name in ("every adviser", "count kept", "recount")
    }
    # SMEMBERS + 50 HMGETs; EVALSHA + HGET; EVALSHA, HGET, HEXISTS, SMEMBERS, 50 HMGETs, HSET,
    # PEXPIRE
    assert commands == {"every adviser": 51, "count kept": 2, "recount": 56}
    assert all(figures[name]["app_cpu_ms"] > 0 for name in commands)
