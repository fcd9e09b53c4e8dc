"""Twilio REST requests: CPU per request, the synchronous SDK in worker threads against the SDK's
asyncio client on the event loop (routing/telephony.py), paired in one run.

    .venv/bin/python -m bench.twilio_http                           # 2,000 redirects x 3 rounds
    .venv/bin/python -m bench.twilio_http --requests 200 --rounds 1  # smoke, a few seconds

Both variants send the same `redirect` (POST .../Calls/{CallSid}.json, Url and Method) through
`TwilioTelephony._call` (retries, error mapping) to tests/support/twilio_stub.py running as a
process of its own, so its CPU is not counted:

* threads - the code before: the twilio SDK's synchronous client (requests, a pooled session)
            in `asyncio.to_thread`, i.e. the default executor (min(32, cores + 4) threads)
* async   - TwilioTelephony as it is: the SDK's `update_async` over `TwilioHttp` (aiohttp, one
            session per event loop, a total timeout, the auth header built once)

`--concurrency` requests are in flight at a time (default 10: 100 calls/s at ~100 ms a request to
Twilio). Measured per variant and round: `time.process_time()` of this process (every thread)
over `--requests` redirects, divided by their number, and the wall time. Rounds alternate which
variant goes first; the stub's request log is reset before each. `--service-logging` logs as the
service does (api/logs.py, INFO, JSON; written to /dev/null here): the SDK's synchronous client
logs every request at INFO, the asyncio one of routing/telephony.py does not.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from routing.telephony import TwilioTelephony

CALLER = "CA" + "1" * 32
URL = "https://kcc.example/twilio/connect?adviser=a1"


class ThreadedTelephony(TwilioTelephony):
    """The redirect as it was: the synchronous SDK in a worker thread, inside the same `_call`."""

    def __init__(self, *, account_sid: str, auth_token: str, api_base: str) -> None:
        super().__init__(account_sid=account_sid, auth_token=auth_token, api_base=api_base)
        self._sync_http = TwilioHttpClient(timeout=3.0)
        self._sync: Any = Client(account_sid, auth_token, http_client=self._sync_http)
        self._sync.api.base_url = api_base.rstrip("/")

    async def redirect(self, call_sid: str, url: str) -> None:
        await self._call(
            f"redirect {call_sid}",
            lambda: asyncio.to_thread(
                lambda: self._sync.calls(call_sid).update(url=url, method="POST")
            ),
        )

    async def aclose(self) -> None:
        if self._sync_http.session is not None:
            self._sync_http.session.close()
        await super().aclose()


async def burst(telephony: TwilioTelephony, requests: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await telephony.redirect(CALLER, URL)

    await asyncio.gather(*(one() for _ in range(requests)))


async def measure(
    variants: dict[str, TwilioTelephony],
    reset: Callable[[], None],
    args: argparse.Namespace,
) -> dict[str, list[tuple[float, float]]]:
    for telephony in variants.values():  # warm: connections, sessions, imports, threads
        await burst(telephony, min(200, args.requests), args.concurrency)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(args.rounds):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            reset()
            cpu, wall = time.process_time(), time.perf_counter()
            await burst(variants[name], args.requests, args.concurrency)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            results[name].append((cpu, wall))
            print(
                f"round {round_ + 1} {name:7}: {cpu / args.requests * 1e6:6.0f} us CPU/request, "
                f"{args.requests / wall:6.0f} requests/s",
                flush=True,
            )
    return results


def report(results: dict[str, list[tuple[float, float]]], requests: int) -> None:
    base = [cpu for cpu, _ in results["threads"]]
    print("\nvariant   CPU us/request (rounds)       median  ratio to threads (per round)")
    for name, runs in results.items():
        per = [cpu / requests * 1e6 for cpu, _ in runs]
        ratios = [cpu / b for (cpu, _), b in zip(runs, base, strict=True)]
        print(
            f"{name:8}  {' '.join(f'{p:6.0f}' for p in per):28}  {statistics.median(per):6.0f}"
            f"  {' '.join(f'{r:.2f}' for r in ratios)}"
        )


def start_stub() -> tuple[subprocess.Popen[str], str, str, str]:
    command = [sys.executable, "-m", "tests.support.twilio_stub", "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready = process.stdout.readline().split()
    if ready[:3] != ["twilio", "stub", "ready"]:
        process.terminate()
        raise SystemExit(f"the stub did not start: {ready}")
    return process, ready[3], ready[4], ready[5]


async def run(args: argparse.Namespace) -> None:
    process, base_url, account_sid, auth_token = start_stub()
    try:
        with httpx.Client(base_url=base_url) as control:

            def reset() -> None:
                control.post("/_stub/reset").raise_for_status()

            options = {"account_sid": account_sid, "auth_token": auth_token, "api_base": base_url}
            variants: dict[str, TwilioTelephony] = {
                "threads": ThreadedTelephony(**options),
                "async": TwilioTelephony(**options),
            }
            try:
                results = await measure(variants, reset, args)
            finally:
                for telephony in variants.values():
                    await telephony.aclose()
            report(results, args.requests)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="redirects per variant/round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10, help="requests in flight")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--service-logging", action="store_true", help="INFO, JSON, as served")
    args = parser.parse_args(argv)
    if args.service_logging:
        from api.logs import configure_logging

        configure_logging("INFO")
        sink = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sink)
    print(
        f"{args.requests} redirects x {args.rounds} rounds, {args.concurrency} in flight, "
        f"{args.loop}, {os.cpu_count()} cores, default executor "
        f"{min(32, (os.cpu_count() or 1) + 4)} threads, "
        f"logging {'as the service (INFO)' if args.service_logging else 'off'}",
        flush=True,
    )
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(run(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main(sys.argv[1:])
