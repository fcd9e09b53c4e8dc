"""For operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import BaseModel
from sqlalchemy import Engine, text

from api.services import Services
from api.web.deps import ServicesDep
from api.webhooks.metrics import LiveFigureCollector
from routing.database_reads import autocommit_read

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

# A health check must never hang: a dependency that has not answered within this is missing.
READY_TIMEOUT_SECONDS = 1.0
Dependency = Literal["redis", "database"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    missing: list[Dependency]  # what did not answer in time; empty when ready
    flow_version: str  # the flow this instance serves (loaded at start-up, kept in memory)
    flow_number: str


@router.get("/healthz")
async def health(services: ServicesDep) -> dict[str, str]:
    """Liveness: the process answers. Reads memory only, never Redis or the database."""
    flows = services.flows
    return {
        "status": "ok",
        "flow_version": flows.pointer.digest,
        "flow_number": str(flows.number),
    }


@router.get("/readyz", response_model=Readiness)
async def ready(services: ServicesDep) -> JSONResponse:
    """Readiness: Redis answers PING and the database SELECT 1, each within a second; 503 names
    what is missing. The flow needs no check: an instance without one does not start."""
    redis_ok, database_ok = await asyncio.gather(
        _redis_answers(services), _database_answers(services)
    )
    missing: list[Dependency] = []
    if not redis_ok:
        missing.append("redis")
    if not database_ok:
        missing.append("database")
    flows = services.flows
    body = Readiness(
        status="not_ready" if missing else "ready",
        missing=missing,
        flow_version=flows.pointer.digest,
        flow_number=str(flows.number),
    )
    return JSONResponse(body.model_dump(), 503 if missing else 200)


async def _redis_answers(services: Services) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await services.redis.ping()
    except Exception as exc:
        log.warning("readiness: Redis does not answer", extra={"error": type(exc).__name__})
        return False
    return True


async def _database_answers(services: Services) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            # Abandoned on the timeout: the thread ends on the driver's own timeout, the
            # answer does not wait for it.
            await anyio.to_thread.run_sync(_select_one, services.db_engine, abandon_on_cancel=True)
    except Exception as exc:
        log.warning("readiness: the database does not answer", extra={"error": type(exc).__name__})
        return False
    return True


def _select_one(engine: Engine) -> None:
    autocommit_read(engine, lambda connection: connection.execute(text("SELECT 1")))


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    # The live figures are read from Redis now (async), then rendered by a registry of this
    # scrape alone: concurrent scrapes never share a half-read state.
    live = CollectorRegistry(auto_describe=False)
    live.register(LiveFigureCollector(await services.live_figures.read()))
    body = generate_latest(REGISTRY) + generate_latest(live)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
