"""`kcc staffing`: how many advisers a load of calls needs (Erlang C), optionally measured on
the real routing code by a simulation (routing/staffing/, docs/staffing.md)."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from routing.staffing.erlang import Figures
    from routing.staffing.simulation import SimulationResult

DEFAULT_HOURS = 100.0  # 6,000 calls at 60 an hour: half a minute on a local Redis
DEFAULT_SL_SECONDS = 20.0


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def staffing(
    calls_per_hour: Annotated[
        float, typer.Option(metavar="N", help="Calls offered to advisers per hour.")
    ],
    handle_time: Annotated[
        float,
        typer.Option(
            metavar="SECONDS", help="Mean handling time: talk plus after-call work, seconds."
        ),
    ],
    advisers: Annotated[
        int | None, typer.Option(metavar="K", help="Advisers at work (or give --target).")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            metavar="PERCENT/SECONDS",
            help="Service level to reach, e.g. 80/20: the fewest advisers that answer 80 % "
            "of calls within 20 s (or give --advisers).",
        ),
    ] = None,
    sl_seconds: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="With --advisers: the answer time the service level counts (default 20).",
        ),
    ] = None,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate", help="Also measure the figures on the real routing code (slower)."
        ),
    ] = False,
    hours: Annotated[
        float, typer.Option(metavar="HOURS", help="Simulated hours of calls (--simulate).")
    ] = DEFAULT_HOURS,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Seed of the simulation's random draws.")
    ] = 1,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="Table for people, JSON for programs.")
    ] = OutputFormat.TABLE,
) -> None:
    """Advisers, probability of waiting, ASA and service level for a load of calls (Erlang C)."""
    from routing.staffing.erlang import (
        Load,
        StaffingInputError,
        Target,
        advisers_for,
        erlang_c,
    )

    if (advisers is None) == (target is None):
        raise _fail("give either --advisers K or --target PERCENT/SECONDS (e.g. 80/20)", 2)
    if target is not None and sl_seconds is not None:
        raise _fail("--sl-seconds goes with --advisers; a --target names its own seconds", 2)
    if simulate and not (0 < hours <= 100_000):
        raise _fail("--hours must be above 0 and at most 100000", 2)
    try:
        load = Load(calls_per_hour, handle_time)
        if target is not None:
            figures = advisers_for(load, Target.parse(target))
        else:
            assert advisers is not None
            figures = erlang_c(load, advisers, sl_seconds=sl_seconds or DEFAULT_SL_SECONDS)
    except StaffingInputError as exc:
        raise _fail(exc.message, 2) from exc
    simulated = _simulate(load, figures, hours=hours, seed=seed) if simulate else None
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(_as_json(figures, simulated), indent=2))
    else:
        typer.echo(_as_table(load.erlangs, figures, simulated))


def _simulate(load: Any, figures: Figures, *, hours: float, seed: int) -> SimulationResult:
    from redis.exceptions import RedisError

    from api.cli.main import _settings
    from api.services import redis_for
    from routing.staffing.simulation import RedisNotEmpty, Simulation

    settings = _settings()

    async def run() -> SimulationResult:
        redis = redis_for(settings)
        try:
            simulation = Simulation(
                redis,
                load,
                figures.advisers,
                hours=hours,
                seed=seed,
                sl_seconds=figures.sl_seconds,
            )
            return await simulation.run()
        finally:
            await redis.aclose()

    try:
        return asyncio.run(run())
    except RedisNotEmpty as exc:
        raise _fail(exc.message, 1) from exc
    except (RedisError, OSError) as exc:
        raise _fail(f"Redis: {exc}", 1) from exc


def _as_json(figures: Figures, simulated: SimulationResult | None) -> dict[str, Any]:
    return {
        "advisers": figures.advisers,
        "erlang_c": {
            "p_wait": figures.p_wait,
            "asa_seconds": figures.asa_seconds,
            "service_level": figures.service_level,
        },
        "simulation": None
        if simulated is None
        else {
            "p_wait": simulated.p_wait,
            "asa_seconds": simulated.asa_seconds,
            "service_level": simulated.service_level,
            "calls": simulated.calls,
            "hours": simulated.hours,
            "seed": simulated.seed,
        },
    }


def _as_table(erlangs: float, figures: Figures, simulated: SimulationResult | None) -> str:
    level = f"service level ({figures.sl_seconds:g} s)"
    rows: list[tuple[str, ...]] = [
        ("", "Erlang C", "simulation"),
        ("advisers", str(figures.advisers), str(simulated.advisers) if simulated else ""),
        ("load (erlangs)", f"{erlangs:.2f}", ""),
        ("P(wait)", f"{figures.p_wait:.4f}", f"{simulated.p_wait:.4f}" if simulated else ""),
        (
            "ASA (s)",
            f"{figures.asa_seconds:.1f}",
            f"{simulated.asa_seconds:.1f}" if simulated else "",
        ),
        (
            level,
            f"{figures.service_level:.1%}",
            f"{simulated.service_level:.1%}" if simulated else "",
        ),
    ]
    if simulated is not None:
        rows.append(("calls simulated", "", f"{simulated.calls} in {simulated.hours:g} h"))
        rows.append(("seed", "", str(simulated.seed)))
    else:
        rows = [row[:2] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def register_staffing_command(app: typer.Typer) -> None:
    app.command()(staffing)
