"""For operations: liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from api.web.deps import ServicesDep
from api.webhooks.metrics import LiveFigureCollector

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
async def metrics(services: ServicesDep) -> Response:
    # The live figures are read from Redis now (async), then rendered by a registry of this
    # scrape alone: concurrent scrapes never share a half-read state.
    live = CollectorRegistry(auto_describe=False)
    live.register(LiveFigureCollector(await services.live_figures.read()))
    body = generate_latest(REGISTRY) + generate_latest(live)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
