"""The forecast, for supervisors: expected calls per weekday and hour and the advisers needed,
the same figures as `kcc forecast --format json` (ivr/forecast.py)."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.web.deps import ServicesDep, SupervisorUser
from ivr.forecast import (
    DEFAULT_HANDLE_SECONDS,
    DEFAULT_TARGET,
    DEFAULT_WEEKS,
    checked_handle_seconds,
    checked_weeks,
    forecast,
    forecast_json,
    parse_target,
)

router = APIRouter(prefix="/api", tags=["forecast"])


class TargetOut(BaseModel):
    service_level: float = Field(description="The share of calls to answer in time, 0.8 = 80 %.")
    seconds: float


class CellOut(BaseModel):
    weekday: int = Field(description="1 = Monday ... 5 = Friday (ISO).")
    hour: int = Field(description="The local hour the cell starts: 9 = 09:00-10:00.")
    calls_per_hour: float = Field(description="Mean calls offered to advisers (queued).")
    incoming_per_hour: float = Field(description="Mean calls coming in, whatever became of them.")
    advisers: int = Field(description="The fewest advisers that reach the target (Erlang C).")
    open_days: int = Field(description="The dates the mean is over: holidays are left out.")


class ForecastAnswer(BaseModel):
    weeks: int
    target: TargetOut
    from_: date = Field(alias="from", description="First day of the period (a Monday).")
    to: date = Field(description="Last day of the period (a Sunday).")
    handle_time_seconds: float
    handle_time_source: str = Field(
        description="'records': the mean talk plus wrap-up of the answered calls; 'default': "
        "no record had one, the default handling time is used."
    )
    handled_calls: int
    cells: list[CellOut]
    peak: CellOut | None = Field(description="The hour needing the most advisers; null: no calls.")


@router.get("/forecast", response_model=ForecastAnswer, response_model_by_alias=True)
async def calls_forecast(
    services: ServicesDep,
    _: SupervisorUser,
    weeks: Annotated[int, Query(description="Full weeks of records, 1-52.")] = DEFAULT_WEEKS,
    target: Annotated[
        str, Query(max_length=16, description="PERCENT/SECONDS, e.g. 80/20.")
    ] = DEFAULT_TARGET,
    handle_time: Annotated[
        float, Query(description="Handling time in seconds when no record has one.")
    ] = DEFAULT_HANDLE_SECONDS,
) -> dict[str, object]:
    checked_weeks(weeks)  # a ForecastInputError answers 422 with its code
    wanted = parse_target(target)
    checked_handle_seconds(handle_time)
    made = await anyio.to_thread.run_sync(
        partial(
            forecast,
            services.db_engine,
            services.flows.current.engine.hours,
            now=services.clock.now(),
            weeks=weeks,
            target=wanted,
            default_handle_seconds=handle_time,
        )
    )
    return forecast_json(made)
