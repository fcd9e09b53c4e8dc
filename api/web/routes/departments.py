"""Departments a call can be transferred to, from the live flow, for advisers and supervisors."""

from __future__ import annotations

from datetime import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.web.deps import ServicesDep, StaffUser
from flows.model import OpeningRange

router = APIRouter(prefix="/api", tags=["departments"])

_MIDNIGHT_CLOSE = time(23, 59, 59, 999999)  # how the model keeps "24:00"


class HoursToday(BaseModel):
    opens: str = Field(description="local time, e.g. 13:00")
    closes: str = Field(description="local time, e.g. 17:00 (open up to, not including, it)")


class DepartmentOut(BaseModel):
    key: str = Field(description="what a transfer names: department:KEY")
    name: str = Field(description="in `lang`")
    open: bool = Field(description="open now, by its own hours or else the KCC's")
    hours_today: HoursToday | None = Field(description="today's hours; null: closed all day")
    products: list[str] = Field(description="the products it handles (ids of the flow)")


def _clock_time(moment: time) -> str:
    return "24:00" if moment == _MIDNIGHT_CLOSE else moment.strftime("%H:%M")


def _hours(hours: OpeningRange | None) -> HoursToday | None:
    if hours is None:
        return None
    return HoursToday(opens=_clock_time(hours.opens), closes=_clock_time(hours.closes))


@router.get("/departments")
async def departments(
    services: ServicesDep,
    _: StaffUser,
    open_only: Annotated[
        bool, Query(alias="open", description="true: only the departments open now")
    ] = False,
    lang: Annotated[
        str | None, Query(max_length=8, description="e.g. nl (default: the flow's first)")
    ] = None,
) -> list[DepartmentOut]:
    """Advisers and supervisors: the live flow's departments, in the flow's order, with whether
    each is open now (the app's clock) and its hours today."""
    loaded = services.flows.current
    flow = loaded.engine.flow
    language = lang if lang in flow.languages else flow.default_language
    return [
        DepartmentOut(
            key=status.key,
            name=status.name.get(language) or status.name.get(flow.default_language) or status.key,
            open=status.open,
            hours_today=_hours(status.hours_today),
            products=status.products,
        )
        for status in loaded.departments.statuses(services.clock.now(), open_only=open_only)
    ]
