"""Opening hours, for anyone: open now (or at a moment), why, and when next."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.web.deps import ServicesDep
from api.web.errors import RequestInvalid
from api.web.params import IsoDateTime

router = APIRouter(prefix="/api", tags=["hours"])


class HoursAnswer(BaseModel):
    open: bool
    reason: str | None = Field(
        description="Why the day's hours are not the ordinary ones: the holiday's name, the "
        "exception's announcement, or (a day without weekly hours, e.g. a Saturday) the flow's "
        "weekly_closed_reason; null on an ordinary weekday, open or not."
    )
    next_open: datetime = Field(
        description="The moment asked about when open, else the next opening."
    )
    closes_at: datetime | None = Field(description="When open: when it closes that day.")
    announcement: str | None = Field(
        description="What callers hear that day (a holiday, an exception); else null."
    )


@router.get("/hours")
async def hours(
    services: ServicesDep,
    at: Annotated[IsoDateTime | None, Query(description="ISO-8601 instant with offset")] = None,
    lang: Annotated[str | None, Query(max_length=8)] = None,
) -> HoursAnswer:
    moment = at or services.clock.now()
    if moment.tzinfo is None:
        raise RequestInvalid(
            "timezone_required", "'at' needs a UTC offset, e.g. 2026-12-24T16:30+01:00"
        )
    engine = services.flows.current.engine
    language = lang if lang in engine.flow.languages else engine.flow.default_language
    state = engine.hours.status(moment)
    return HoursAnswer(
        open=state.open,
        reason=state.reason.get(language) if state.reason else None,
        next_open=state.next_open,
        closes_at=state.closes_at,
        announcement=state.announcement.get(language) if state.announcement else None,
    )
