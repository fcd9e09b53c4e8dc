"""The waiting calls, for supervisors."""

from __future__ import annotations

from fastapi import APIRouter

from api.web.deps import ServicesDep, SupervisorUser
from routing.entry import QueueEntry

router = APIRouter(prefix="/api", tags=["queue"])


@router.get("/queue")
async def waiting_calls(services: ServicesDep, _: SupervisorUser) -> list[QueueEntry]:
    return await services.queue.waiting()
