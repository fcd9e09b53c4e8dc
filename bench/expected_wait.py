"""What the callers' expected wait costs per waitUrl fetch: the advisers working a product.

    .venv/bin/python -m bench.expected_wait --redis-url redis://127.0.0.1:6379/7
    .venv/bin/python -m bench.expected_wait --advisers 50 --fetches 20 --redis-url ...  # smoke

Registers --advisers advisers (four in five available, the rest on a break) in the Redis
database of --redis-url (**flushed**), then times --fetches calls, one after the other, of:

* every adviser  - the read the expected wait made before: the advisers set, then a pipeline of
                   one HMGET (state, skills) per adviser, counted in Python (kept here as the
                   baseline);
* count kept     - `AdviserBoard.working` while the counts are fresh (routing/lua/
                   advisers_working.lua: one EVALSHA reading one field);
* recount        - the same with the counts gone (DEL first, not counted): what the first fetch
                   after they expire costs, once a second for the whole deployment.

Per fetch: the commands Redis ran (INFO commandstats, those inside scripts included), Redis CPU
(INFO cpu, over the whole loop) and this process's CPU. Needs a real Redis of its own (the
figures are the server's). --json-out FILE writes them as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import cast

from redis.asyncio import Redis

from api.services import make_redis
from routing import keys
from routing.board import AdviserBoard, AdviserState

PRODUCT = "vog_np"
SKILLS = "vog_np,vog_rp,gva"
NOT_WORKING = {AdviserState.OFFLINE.value, AdviserState.BREAK.value, AdviserState.AWAY.value}


async def every_adviser(redis: Redis, product: str) -> int:
    """The expected wait's read before advisers_working.lua (routing/board.py until 2026-12-06)."""
    names = sorted(cast(set[str], await redis.smembers(keys.advisers())))
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(keys.adviser(name), ["state", "skills"])
        found = await pipe.execute()
    return sum(
        1
        for state, skills in found
        if state is not None and state not in NOT_WORKING and product in str(skills).split(",")
    )


async def server_counts(redis: Redis) -> tuple[int, float]:
    """Commands Redis ran (INFO itself left out) and its CPU seconds, so far."""
    stats = await redis.info("commandstats")
    cpu = await redis.info("cpu")
    commands = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    return commands, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def measure(
    redis: Redis,
    fetch: Callable[[], Awaitable[int]],
    fetches: int,
    expected: int,
    before_each: Callable[[], Awaitable[object]] | None = None,
) -> dict[str, float]:
    await fetch()  # the script is loaded, the connection made
    app_cpu = 0.0
    c0, r0 = await server_counts(redis)
    for _ in range(fetches):
        if before_each is not None:
            await before_each()
        t0 = time.process_time()
        found = await fetch()
        app_cpu += time.process_time() - t0
        if found != expected:
            raise SystemExit(f"counted {found} advisers working, not {expected}")
    c1, r1 = await server_counts(redis)
    # before_each's one command a fetch (a DEL) is not the fetch's; its CPU is in (a few µs)
    commands = c1 - c0 - (fetches if before_each is not None else 0)
    redis_cpu = r1 - r0
    return {
        "commands": commands / fetches,
        "redis_cpu_ms": 1000 * redis_cpu / fetches,
        "app_cpu_ms": 1000 * app_cpu / fetches,
    }


async def run(redis_url: str, advisers: int, fetches: int) -> dict[str, dict[str, float]]:
    redis = make_redis(redis_url)
    try:
        await redis.flushdb()
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(advisers):
                state = AdviserState.BREAK if i % 5 == 0 else AdviserState.AVAILABLE
                pipe.hset(keys.adviser(f"a{i}"), mapping={"state": state.value, "skills": SKILLS})
                pipe.sadd(keys.advisers(), f"a{i}")
            await pipe.execute()
        working = advisers - (advisers + 4) // 5
        # A long TTL, so that no count expires in the middle of the "count kept" loop.
        board = AdviserBoard(redis, working_ttl_ms=3_600_000)
        return {
            "every adviser": await measure(
                redis, lambda: every_adviser(redis, PRODUCT), fetches, working
            ),
            "count kept": await measure(redis, lambda: board.working(PRODUCT), fetches, working),
            "recount": await measure(
                redis,
                lambda: board.working(PRODUCT),
                fetches,
                working,
                before_each=lambda: redis.delete(keys.advisers_working()),
            ),
        }
    finally:
        await redis.flushdb()
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis-url", required=True, help="a database of its own: flushed!")
    parser.add_argument("--advisers", type=int, default=500)
    parser.add_argument("--fetches", type=int, default=400)
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args.redis_url, args.advisers, args.fetches))
    print(f"{args.advisers} advisers, {args.fetches} fetches; per fetch:")
    for name, row in figures.items():
        print(
            f"  {name:14s} {row['commands']:7.1f} commands  {row['redis_cpu_ms']:6.3f} ms Redis"
            f"  {row['app_cpu_ms']:6.3f} ms app CPU"
        )
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as out:
            json.dump({"advisers": args.advisers, "fetches": args.fetches, **figures}, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
