"""For operations: liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.web.deps import ServicesDep

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def health(services: ServicesDep) -> dict[str, str]:
    flows = services.flows
    return {
        "status": "ok",
        "flow_version": flows.pointer.digest,
        "flow_number": str(flows.number),
    }


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
