"""Instructions per webhook: a kcc server under valgrind's callgrind, driven kind by kind.

    .venv/bin/python -m bench.instructions DIR [DIR ...]     # each DIR a `git archive` snapshot
    .venv/bin/python -m bench.instructions --calls 100 DIR   # quicker
    .venv/bin/python -m bench.instructions --wait DIR        # and one waitUrl fetch per call

Wall-clock figures on a shared machine move with the other load; the number of instructions a
server executes for a fixed set of requests does not. For every source tree this starts one
uvicorn worker as bench/webhooks.py does (uvloop, httptools, no access log, signatures checked,
the clock pinned to an open moment, database 8 of the Redis given, a SQLite file of its own)
under `valgrind --tool=callgrind` with instrumentation off, warms it up with `--warm` whole
calls, then places `--calls` calls kind by kind: every call's first webhook (voice), then
every call's menu step, submenu step, skipped question and status callback (with `--wait`,
before it, one fetch of the waitUrl the `<Enqueue>` names), each kind over `--connections`
keep-alive connections. Callgrind's counters are zeroed before and dumped after
each kind (a second after its last answer, so that what it left to background threads is
counted), so each figure is the instructions of the whole server process (all threads) for
that kind, divided by the number of calls.

The copy that runs has its routing tick slowed to once an hour: under valgrind a request takes
~50 times as long, and a once-a-second tick would weigh fifty times what it weighs in
production. Garbage collections land in one kind or another as allocations add up, so a kind
can move by ~2 % between code changes that do not touch it; the sum per call repeats within
~0.5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import redis

from bench.webhooks import (
    AUTH_TOKEN,
    BASE_PARAMS,
    EXPECTED_QUEUE,
    OPEN_MOMENT,
    SECRET_KEY,
    Connection,
    Signer,
    free_port,
    gather_action,
    twiml,
)

KINDS = ("voice", "menu", "submenu", "skip", "status")
WITH_WAIT = ("voice", "menu", "submenu", "skip", "wait", "status")
SETTLE_SECONDS = 1.0
TICK = re.compile(r"^TICK_SECONDS = [\d.]+", re.M)


class Call:
    def __init__(self, number: int, public: str) -> None:
        self.params = {"CallSid": f"CA{number:032x}", **BASE_PARAMS, "CallStatus": "ringing"}
        self.url = f"{public}/twilio/voice"
        self.answer: ET.Element | None = None
        self.wait_url = ""


async def _kind(conn: Connection, calls: list[Call], kind: str) -> None:
    for call in calls:
        params = call.params
        if kind == "voice":
            call.answer = twiml(await conn.post(conn.request(call.url, params)))
            params["CallStatus"] = "in-progress"
            call.url = gather_action(call.answer, "voice")
        elif kind in ("menu", "submenu"):
            form = {**params, "Digits": "1" if kind == "menu" else "2"}
            call.answer = twiml(await conn.post(conn.request(call.url, form)))
            if kind == "menu":
                call.url = gather_action(call.answer, "menu")
        elif kind == "skip":  # the optional application number, skipped with "#"
            assert call.answer is not None
            url = gather_action(call.answer, "skip")
            answer = twiml(await conn.post(conn.request(url, {**params, "Digits": ""})))
            enqueue = answer.find("Enqueue")
            if enqueue is None or enqueue.text != EXPECTED_QUEUE:
                raise AssertionError(ET.tostring(answer, encoding="unicode")[:300])
            call.wait_url = enqueue.get("waitUrl", "")
        elif kind == "wait":  # Twilio's first fetch of the waitUrl: first in line
            form = {**params, "QueuePosition": "1", "QueueTime": "0", "AvgQueueTime": "0"}
            hold = twiml(await conn.post(conn.request(call.wait_url, form)))
            if hold.find("Play") is None and hold.find("Pause") is None:
                raise AssertionError(ET.tostring(hold, encoding="unicode")[:300])
        else:
            params.update(CallStatus="completed", CallDuration="42")
            url = f"{conn.public}/twilio/status"
            if len(twiml(await conn.post(conn.request(url, params)))):
                raise AssertionError("the status callback answered more than <Response/>")


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


async def _drive(port: int, pid: int, args: argparse.Namespace) -> None:
    kinds = WITH_WAIT if args.wait else KINDS
    signer = Signer(AUTH_TOKEN)
    conns = [Connection(port, signer) for _ in range(args.connections)]
    await asyncio.gather(*(conn.open() for conn in conns))
    public = conns[0].public

    async def each_kind(calls: list[Call], measured: bool) -> None:
        for kind in kinds:
            share = len(conns)
            await asyncio.gather(*(_kind(c, calls[i::share], kind) for i, c in enumerate(conns)))
            if measured:
                # what the kind leaves to background threads (call records) is its cost too
                await asyncio.sleep(SETTLE_SECONDS)
                _callgrind(pid, "-d", kind)

    await each_kind([Call(10**9 + i, public) for i in range(args.warm)], measured=False)
    await asyncio.sleep(3 * SETTLE_SECONDS)  # the warm-up's background writes are not measured
    _callgrind(pid, "-i", "on")
    _callgrind(pid, "-z")
    await each_kind([Call(i, public) for i in range(args.calls)], measured=True)
    for conn in conns:
        conn.close()


def measure(source: Path, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Instructions per call of each kind of webhook, for the kcc server of `source`."""
    copy = workdir / source.name
    shutil.copytree(source, copy)
    for app in (copy / "api" / "app.py", copy / "api" / "web" / "app.py"):  # old and new layout
        if app.exists():
            app.write_text(TICK.sub("TICK_SECONDS = 3600.0", app.read_text()))
    redis.Redis.from_url(args.redis_url).flushdb()
    port = free_port()
    out = workdir / f"{source.name}.callgrind"
    out.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join((str(copy), str(Path(__file__).resolve().parent.parent))),
        "PYTHONHASHSEED": "0",
        "KCC_REDIS_URL": args.redis_url,
        "KCC_DATABASE_URL": f"sqlite:///{workdir}/{source.name}.sqlite3",
        "KCC_SECRET_KEY": SECRET_KEY,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "KCC_NOW": OPEN_MOMENT,
        "KCC_LOG_LEVEL": "WARNING",
        "KCC_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}/callgrind.out",
        sys.executable,
        "-m",
        "uvicorn",
        "api.asgi:app",
        *("--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools"),
        *("--no-access-log", "--no-proxy-headers", "--log-level", "warning"),
        *("--app-dir", str(copy)),
    ]
    with (workdir / f"{source.name}.log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server of {source} did not start")
            time.sleep(1)
        asyncio.run(_drive(port, proc.pid, args))
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    figures: dict[str, float] = {}
    for dump in out.glob("callgrind.out.*"):
        text = dump.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: .*?(\w+)\s*$", text, re.M)  # "dump voice"
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if trigger and total and trigger.group(1) in WITH_WAIT:
            figures[trigger.group(1)] = int(total.group(1)) / args.calls
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="source trees; the first is 1.00")
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--warm", type=int, default=60, help="whole calls before measuring")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--wait", action="store_true", help="also one waitUrl fetch per call")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for source in args.sources:
            rows.append((source, measure(source.resolve(), args, Path(tmp))))
    print(f"instructions per call, {args.calls} calls after {args.warm} ({args.connections} conns)")
    kinds = WITH_WAIT if args.wait else KINDS
    print(f"{'source':30}" + "".join(f"{k:>10}" for k in kinds) + f"{'whole call':>12}{'×':>7}")
    first = sum(rows[0][1].values())
    for source, figures in rows:
        total = sum(figures.values())
        cells = "".join(f"{figures.get(k, float('nan')):>10,.0f}" for k in kinds)
        print(f"{str(source)[-30:]:30}{cells}{total:>12,.0f}{total / first:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
