"""The ideal M/M/N queue Erlang C describes, as a reference for the staffing simulation's tests:
calls served first come, first served, each by whichever adviser is free first, with the same
random draws in the same order as routing/staffing/simulation.py makes them (the first gap,
then per call its handling time and the gap to the next call).

It decides nothing for the service: it is the oracle the real routing is compared with."""

from __future__ import annotations

import heapq
import random


def ideal_waits(calls_per_hour: float, handle_seconds: float, advisers: int, *, hours: float,
                seed: int) -> list[float]:  # fmt: skip
    draw = random.Random(seed)
    arrival_rate = calls_per_hour / 3600
    free_at = [0.0] * advisers  # when each adviser is free next (a heap)
    waits: list[float] = []
    arrives = draw.expovariate(arrival_rate)
    while arrives < hours * 3600:
        handling = draw.expovariate(1 / handle_seconds)
        starts = max(arrives, heapq.heappop(free_at))
        waits.append(starts - arrives)
        heapq.heappush(free_at, starts + handling)
        arrives += draw.expovariate(arrival_rate)
    return waits
