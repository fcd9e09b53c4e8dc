"""Opening hours, for anyone: open now (or at a moment), why, and when next."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.web.deps import ServicesDep
from api.web.errors import RequestInvalid

router = APIRouter(prefix="/api", tags=["hours"])


class HoursAnswer(BaseModel):
    open: bool
    reason: str | None
    next_open: datetime
    closes_at: datetime | None
    announcement: str | None


@router.get("/hours")
async def hours(
    services: ServicesDep,
    at: Annotated[datetime | None, Query(description="ISO-8601 instant with offset")] = None,
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
