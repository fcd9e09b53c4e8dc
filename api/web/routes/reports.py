"""Call reports for supervisors: the figures of a period, grouped, as JSON or as a CSV file
(ivr/reports.py computes them; docs/reports.md defines them)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.web.deps import ServicesDep, SupervisorUser
from ivr.reports import (
    DEFAULT_SL_SECONDS,
    Grouping,
    ReportQuery,
    report_csv,
    report_json,
    run_report,
)

router = APIRouter(prefix="/api", tags=["reports"])


class FiguresOut(BaseModel):
    calls: int = Field(description="Every call recorded: queued, ended in the menu or not.")
    offered: int = Field(description="Calls that entered an adviser queue.")
    answered: int = Field(description="Calls put through to an adviser.")
    answered_in_sl: int = Field(description="Answered within sl_seconds of entering the queue.")
    abandoned: int = Field(description="Left the queue without being answered.")
    service_level: float | None = Field(description="answered_in_sl / offered; null: none.")
    asa_seconds: float | None = Field(description="Mean wait of answered calls.")
    aht_seconds: float | None = Field(description="Mean talk + wrap-up time of answered calls.")
    abandon_rate: float | None = Field(description="abandoned / offered; null: none offered.")
    self_service: int = Field(description="Heard their application's status, no adviser.")
    ended_in_menu: int = Field(description="Never queued and not self-service.")
    callbacks: int = Field(description="Asked to be called back.")
    transfers: int = Field(description="Transferred by the adviser.")
    survey_responses: int
    survey_average: float | None = Field(description="Mean survey mark (1-10); null: none.")


class RowOut(FiguresOut):
    key: str | int | None = Field(
        description="The row's product, theme, day (YYYY-MM-DD), hour (0-23), weekday (1 Monday "
        "... 7 Sunday), adviser or wrap-up code; null: calls without one (e.g. no theme)."
    )


class ReportOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    by: Grouping
    sl_seconds: int
    product: str | None
    rows: list[RowOut]
    total: FiguresOut = Field(
        description="Over all calls of the period: its counts are the rows' added up, its rates "
        "and means over all calls (not means of the rows')."
    )


@router.get(
    "/reports",
    response_model=ReportOut,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or with format=csv a file"}
    },
)
async def reports(
    services: ServicesDep,
    _: SupervisorUser,
    start: Annotated[str, Query(alias="from", description="First day, YYYY-MM-DD (included)")],
    end: Annotated[str, Query(alias="to", description="Last day, YYYY-MM-DD (included)")],
    by: Annotated[
        str, Query(description="product, theme, day, hour, weekday, adviser, wrap_up")
    ] = Grouping.PRODUCT.value,
    sl_seconds: Annotated[int, Query(description="Service level's answer time, 1-3600 s")] = (
        DEFAULT_SL_SECONDS
    ),
    product: Annotated[
        str | None, Query(max_length=64, description="Only the calls about this product")
    ] = None,
    format: Annotated[Literal["json", "csv"], Query(description="csv: a file to download")] = (
        "json"
    ),
) -> Any:
    """Supervisors only: the figures of the calls that started in the period (the contact
    centre's days), one row per `by`, and the total. 422 `report_*` codes for a bad period,
    grouping or sl_seconds."""
    query = ReportQuery.parse(start, end, by, sl_seconds, product)
    zone = ZoneInfo(services.flows.flow.calendar.timezone)
    report = await anyio.to_thread.run_sync(partial(run_report, services.db_engine, query, zone))
    if format == "csv":
        name = f"kcc-report-{query.by.value}-{query.start}-{query.end}.csv"
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return report_json(report)
