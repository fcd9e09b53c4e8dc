"""The FastAPI application: wires settings, stores and routes together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from api.services import Services, build_services
from api.settings import Settings
from api.web.routes import advisers, auth, hours, pages
from api.web.routes import flows as flow_routes
from api.webhooks import handlers as twilio_routes
from ivr.fallback import last_resort
from routing.clock import Clock

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0  # the routing safety net: wrap-ups over, offers unanswered, idle advisers
# Every so many ticks the live flow pointer is read from the database: repairs Redis' copy when a
# publish could not reach Redis, or Redis restarted empty.
RECONCILE_TICKS = 10
# The largest request anyone sends is a flow draft (at most 512 kB of YAML, as JSON); a client
# sending more is answered 413 before the body is buffered. Webhooks are capped far lower.
MAX_BODY_BYTES = 2 * 1024 * 1024


class KccApp(FastAPI):
    """FastAPI, but Twilio's webhooks are answered before its middleware stack: they are on the
    caller's clock and need none of it (api/twilio_routes.py answer_webhook)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await twilio_routes.answer_webhook(self, scope, receive, send):
            await super().__call__(scope, receive, send)


async def _tick_forever(services: Services) -> None:
    ticks = 0
    while True:
        await asyncio.sleep(TICK_SECONDS)
        ticks += 1
        try:
            await services.router.tick()
        except Exception:  # Redis away for a moment: try again next tick
            log.exception("routing tick failed")
        if ticks % RECONCILE_TICKS == 0:
            try:
                await services.flows.reconcile()
            except Exception:
                log.exception("flow re-sync failed")


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    services: Services | None = None,
) -> FastAPI:
    """Build the app. Loading the flow fails here, before any call is taken, if it is invalid."""
    settings = settings or Settings()
    services = services or build_services(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "kcc-ivr ready",
            extra={"flow": services.flows.name, "flow_version": services.flows.current.digest},
        )
        tasks = [
            asyncio.create_task(_tick_forever(services)),
            asyncio.create_task(services.flows.listen()),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await services.close()

    app = KccApp(title="kcc-ivr", version="0.1.0", lifespan=lifespan, max_body_size=MAX_BODY_BYTES)
    app.state.services = services
    app.router.routes.extend(twilio_routes.routes)
    app.include_router(auth.router)
    app.include_router(hours.router)
    app.include_router(flow_routes.router)
    app.include_router(advisers.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/twilio/"):  # Twilio must always get TwiML
            log.warning("malformed Twilio request", extra={"path": request.url.path})
            return Response(last_resort(), media_type="application/xml")
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        if request.url.path.startswith("/twilio/"):
            return Response(last_resort(), media_type="application/xml")
        return PlainTextResponse("internal error", status_code=500)

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, str]:
        flows = services.flows
        return {
            "status": "ok",
            "flow_version": flows.pointer.digest,
            "flow_number": str(flows.number),
        }

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
