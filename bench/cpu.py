"""CPU cost of one call, in-process and one call at a time: what each proposed change saves.

    .venv/bin/python -m bench.cpu                       # bare, as-is, and every variant
    .venv/bin/python -m bench.cpu --variants none all --calls 3000

bench/variants.py is written against commit 8d4773b: run the variants on a snapshot of it
(`--source DIR`, DIR from `git archive 8d4773b | tar -x -C DIR`); on later code some no longer
fit (`none` always does).

The throughput benchmark (bench/webhooks.py) shares two cores with the load generator, Redis
and whatever else runs on the machine, so differences of 10-20 % drown in noise. This one calls
the ASGI app directly (no HTTP server, no sockets of its own; real Redis, SQLite in a temporary
folder), one call after the other, and reads the process's CPU time: the app's own cost per
call, which noise from other processes barely moves (it does not count their time).

Every target runs in its own process (the variants patch modules); targets are interleaved
over `--repeat` rounds and the lowest CPU per request of each is reported (the least disturbed
round). The driver's own work (signing, encoding, parsing the answer) is in every figure; it is
the same for every target, so compare differences, or take bare as the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import uvloop

from bench.webhooks import (
    AUTH_TOKEN,
    BASE_PARAMS,
    EXPECTED_QUEUE,
    MAX_SKIPS,
    OPEN_MOMENT,
    ROOT,
    SECRET_KEY,
    BadAnswer,
    Signer,
    form_body,
    gather_action,
    twiml,
)

PUBLIC = "http://127.0.0.1:8000"
ROUTES = ("voice", "menu", "submenu", "skip", "status")
DEFAULT_VARIANTS = (
    "none",
    "norecord",
    "batched",
    "batched,wal",
    "batched,wal,rtt",
    "batched,wal,cache",
    "batched,wal,sig",
    "batched,wal,form",
    "batched,wal,timeout",
    "batched,wal,nosocktimeout",
    "all",
    "all,nosocktimeout",
)

Asgi = Any


class Driver:
    """Posts signed Twilio forms straight into an ASGI app."""

    def __init__(self, app: Asgi) -> None:
        self.app = app
        self.signer = Signer(AUTH_TOKEN)
        self.latencies: dict[str, list[int]] = {route: [] for route in ROUTES}
        self.record = False
        self.requests = 0  # measured requests

    async def post(self, route: str, url: str, params: dict[str, str]) -> bytes:
        path, _, query = url[len(PUBLIC) :].partition("?")
        body = form_body(params)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"x-twilio-signature", self.signer.sign(url, params).encode()),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # the client never disconnects
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        started = time.perf_counter_ns()
        await self.app(scope, receive, send)
        if self.record:
            self.latencies[route].append(time.perf_counter_ns() - started)
            self.requests += 1
        answer = b"".join(chunks)
        if status != 200:
            raise BadAnswer(f"http-{status}", answer[:200].decode(errors="replace"))
        return answer

    async def kcc_call(self, n: int) -> None:
        params = {"CallSid": f"CA{n:032x}", **BASE_PARAMS, "CallStatus": "ringing"}
        answer = twiml(await self.post("voice", f"{PUBLIC}/twilio/voice", params))
        params["CallStatus"] = "in-progress"
        url = gather_action(answer, "voice")
        answer = twiml(await self.post("menu", url, {**params, "Digits": "1"}))
        url = gather_action(answer, "menu")
        answer = twiml(await self.post("submenu", url, {**params, "Digits": "2"}))
        for _ in range(MAX_SKIPS):  # optional questions before the queue, answered with "#"
            if answer.find("Enqueue") is not None or answer.find("Gather") is None:
                break
            url = gather_action(answer, "skip")
            answer = twiml(await self.post("skip", url, {**params, "Digits": ""}))
        enqueue = answer.find("Enqueue")
        if enqueue is None or enqueue.text != EXPECTED_QUEUE:
            raise BadAnswer("submenu-not-queued")
        params.update(CallStatus="completed", CallDuration="42")
        twiml(await self.post("status", f"{PUBLIC}/twilio/status", params))

    async def bare_call(self, n: int) -> None:
        params = {"CallSid": f"CA{n:032x}", **BASE_PARAMS, "CallStatus": "ringing"}
        for route in ("voice", "menu", "submenu", "status"):
            twiml(await self.post(route, f"{PUBLIC}/twilio/voice", params))


async def drive(target: str, calls: int, warmup: int) -> dict[str, Any]:
    if target == "bare":
        from bench.bare_app import app
    else:
        from bench.variants import app
    driver = Driver(app)
    call = driver.bare_call if target == "bare" else driver.kcc_call
    base = int(time.time() * 1000) << 20  # CallSids unique across runs
    for n in range(warmup):
        await call(base + n)
    driver.record = True
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(warmup, warmup + calls):
        await call(base + n)
    await asyncio.sleep(0.3)  # let background work (batched records) finish, its CPU counted
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall - 0.3
    requests = driver.requests
    return {
        "target": target,
        "calls": calls,
        "cpu_us_per_request": cpu / requests * 1e6,
        "wall_us_per_request": wall / requests * 1e6,
        "requests_per_call": requests / calls,
        "p50_us": {r: statistics.median(v) / 1e3 for r, v in driver.latencies.items() if v},
    }


def worker(args: argparse.Namespace) -> int:
    result = uvloop.run(drive(args.worker, args.calls, args.warmup))
    print(json.dumps(result))
    return 0


def run_target(target: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "KCC_REDIS_URL": args.redis_url,
        "KCC_DATABASE_URL": f"sqlite:///{workdir}/{time.time_ns()}.sqlite3",
        "KCC_PUBLIC_URL": PUBLIC,
        "KCC_SECRET_KEY": SECRET_KEY,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "KCC_NOW": OPEN_MOMENT,
        "KCC_LOG_LEVEL": "WARNING",
        "KCC_BENCH_VARIANT": target if target != "bare" else "none",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(args.source), str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    cmd = [sys.executable, "-m", "bench.cpu", "--worker", "bare" if target == "bare" else "kcc"]
    cmd += ["--calls", str(args.calls), "--warmup", str(args.warmup)]
    done = subprocess.run(cmd, env=env, cwd=args.source, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{target} failed:\n{done.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    result["target"] = target
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU per webhook call, in-process.")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--calls", type=int, default=1500, help="measured calls per target")
    parser.add_argument("--warmup", type=int, default=200, help="calls before measuring")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--source", type=Path, default=ROOT, help="source tree of the app")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--worker", choices=("bare", "kcc"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    client = redis.Redis.from_url(args.redis_url)
    targets = ["bare", *args.variants]
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    with tempfile.TemporaryDirectory(prefix="kcc-bench-cpu-") as tmp:
        for round_no in range(1, args.repeat + 1):
            for target in targets:
                client.flushdb()
                result = run_target(target, args, Path(tmp))
                runs[target].append(result)
                print(
                    f"  round {round_no} {target}: {result['cpu_us_per_request']:.0f} us CPU "
                    f"per request",
                    flush=True,
                )
    client.flushdb()

    best = {t: min(r, key=lambda x: x["cpu_us_per_request"]) for t, r in runs.items()}
    bare = best["bare"]["cpu_us_per_request"]
    none = best.get("none", {}).get("cpu_us_per_request")
    print()
    print(
        f"{'target':<22} {'CPU us/req':>10} {'vs bare':>8} {'saved vs none':>14} "
        f"{'wall us/req':>11}  p50 us voice/menu/submenu/skip/status (one call at a time)"
    )
    for target, result in best.items():
        cpu = result["cpu_us_per_request"]
        saved = f"{(none - cpu) / none:>13.0%}" if none and target != "bare" else f"{'':>13}"
        p50 = "/".join(
            f"{result['p50_us'][r]:.0f}" if r in result["p50_us"] else "-" for r in ROUTES
        )
        print(
            f"{target:<22} {cpu:>10.0f} {cpu / bare:>7.1f}x {saved:>14} "
            f"{result['wall_us_per_request']:>11.0f}  {p50}"
        )
    print(
        "\nCPU us/req: the process's CPU time (all threads) per webhook, lowest of the rounds; "
        "a ratio to bare of 2.0x or less is what kcc needs for >= 0.5 of bare's throughput."
    )
    if args.json_out:
        args.json_out.write_text(json.dumps({"best": best, "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
