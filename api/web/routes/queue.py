"""The waiting calls, for supervisors: what a call waits for, never who is calling."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from api.web.deps import ServicesDep, SupervisorUser
from routing.entry import QueueEntry

router = APIRouter(prefix="/api", tags=["queue"])


class WaitingCall(BaseModel):
    """A waiting call as a supervisor sees it. The caller's number, application, path and an
    adviser's transfer note are personal context: only the adviser the call is offered to gets
    them (docs/identity.md)."""

    call_sid: str
    language: str
    product: str
    theme: str
    priority: int
    verification: str
    queued_at: datetime
    callback: bool
    transferred: bool

    @classmethod
    def of(cls, entry: QueueEntry) -> WaitingCall:
        return cls(
            call_sid=entry.call_sid,
            language=entry.language,
            product=entry.product,
            theme=entry.theme,
            priority=entry.priority,
            verification=entry.verification,
            queued_at=entry.queued_at,
            callback=entry.callback,
            transferred=entry.transferred_by is not None,
        )


@router.get("/queue")
async def waiting_calls(services: ServicesDep, _: SupervisorUser) -> list[WaitingCall]:
    return [WaitingCall.of(entry) for entry in await services.queue.waiting()]
