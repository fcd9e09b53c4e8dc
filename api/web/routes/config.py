"""What the staff pages need to know about this installation and its live flow."""

from __future__ import annotations

from fastapi import APIRouter

from api.web.deps import CurrentUser, ServicesDep

router = APIRouter(prefix="/api", tags=["config"])


@router.get("/config")
async def config(services: ServicesDep, _: CurrentUser) -> dict[str, object]:
    """Staff only, as all of /api: whether telephony is simulated, the flow's languages."""
    return {
        "simulated_telephony": services.simulated_telephony,
        "languages": services.flows.flow.languages,
    }
