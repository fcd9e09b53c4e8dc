"""A smoke run of the webhook benchmark (bench/webhooks.py) on the real Redis: both workloads
(whole calls against the bare endpoint, the new-call webhook against the floor) and a second kcc
server from `--source` are measured, answered and reported without an error.

The benchmark flushes its Redis database, so it gets database 8 of KCC_TEST_REDIS_URL's server,
not the tests' own."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import REDIS_URL, missing_service

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def bench_redis_url() -> str:
    return urlunsplit(urlsplit(REDIS_URL)._replace(path="/8"))


def redis_running(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 0.5):
            return True
    except OSError:
        return False


def test_smoke_run_reports_calls_new_call_and_the_compared_source(tmp_path: Path) -> None:
    url = bench_redis_url()
    if not redis_running(url):
        missing_service(f"Redis at {url}")
        pytest.skip("Redis is not running here (it is in CI)")
    out = tmp_path / "bench.json"
    command = [
        *(sys.executable, "-m", "bench.webhooks", "--duration", "1", "--warmup", "0"),
        *("--rounds", "1", "--redis-url", url, "--json-out", str(out)),
        *("--source", str(ROOT)),  # the same code as a second kcc server, named kcc-old
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr

    document = json.loads(out.read_text())
    assert document["ok"] and document["problems"] == []
    measured = {(phase["workload"], phase["target"]) for phase in document["phases"]}
    assert measured == {
        (workload, side)
        for workload, baseline in (("calls", "bare"), ("new-call", "floor"))
        for side in (baseline, "kcc", "kcc-old")
    }
    assert all(phase["errors"] == {} for phase in document["phases"])
    for workload, baseline in (("calls", "bare"), ("new-call", "floor")):
        figures = document["summary"][workload]
        for side in (baseline, "kcc", "kcc-old"):
            assert figures["sides"][side]["rps"] > 0
            assert figures["sides"][side]["server_cpu_ms"] > 0
        for pair in (f"kcc/{baseline}", f"kcc-old/{baseline}", "kcc/kcc-old"):
            assert figures["ratios"][pair]["rps"] > 0
    # The whole call's figures and targets, where they were before the workloads.
    assert document["summary"]["ratio"] > 0
    assert document["summary"]["kcc"]["rps"] > 0
