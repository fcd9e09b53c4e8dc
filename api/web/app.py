"""The app: the staff web app (FastAPI) with Twilio's webhooks in front of it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from api.instance_lock import InstanceLocked, lock_embedded_store
from api.services import Services, build_services
from api.settings import Settings
from api.web.errors import ErrorOut, install_error_handlers
from api.web.refusals import declare_refusals
from api.web.routes import (
    advisers,
    auth,
    calls,
    config,
    demo,
    departments,
    forecast,
    hours,
    operations,
    pages,
    queue,
    reports,
    users,
    voice,
    wallboard,
)
from api.web.routes import flows as flow_routes
from api.web.security import guarded
from api.webhooks.dispatcher import PREFIX, WebhookDispatcher
from api.webhooks.handlers import HANDLERS
from routing.clock import Clock
from routing.pipelined_redis import PipelinedRedis

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0  # the routing safety net: wrap-ups over, offers unanswered, idle advisers
# Every so many ticks the live flow pointer is read from the database: repairs Redis' copy when a
# publish could not reach Redis, or Redis restarted empty.
RECONCILE_TICKS = 10
# Every so many ticks an instance asks whether today's record purge is done (ivr/retention.py).
RETENTION_TICKS = 60
# Behind Sentinel, how often an instance asks where the master is: a master that lost its place
# in a failover takes writes until the Sentinel demotes it, up to 10 s later (docs/operations.md).
FOLLOW_MASTER_SECONDS = 0.5
# The largest request anyone sends is a flow draft (at most 512 kB of YAML, as JSON); a client
# sending more is answered 413 before the body is buffered. Webhooks are capped far lower.
MAX_BODY_BYTES = 2 * 1024 * 1024

# The routes per noun: the staff API, then what is not part of it (pages, health, metrics).
API_ROUTERS = tuple(
    m.router
    for m in (
        auth,
        hours,
        queue,
        config,
        advisers,
        calls,
        departments,
        flow_routes,
        voice,
        forecast,
        users,
        wallboard,
        reports,
    )
)
OTHER_ROUTERS = (operations.router, pages.router, demo.router)
_WEBHOOK_PATHS = f"{PREFIX}/"


class KccApp(FastAPI):
    """FastAPI, with Twilio's webhooks answered before its middleware stack by their own
    dispatcher: they are on the caller's clock and need none of it (api/webhooks/)."""

    twilio_edge: WebhookDispatcher
    body_seconds: float  # a request's body must be in by then (api/web/security.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
        elif scope["path"].startswith(_WEBHOOK_PATHS):
            await guarded(
                self.twilio_edge,
                scope,
                receive,
                send,
                body_seconds=self.body_seconds,
                headers=False,
            )
        else:
            # The security headers on every page and API answer, the body bounded in time.
            app = _too_large if _declared_length(scope) > MAX_BODY_BYTES else super().__call__
            await guarded(app, scope, receive, send, body_seconds=self.body_seconds)


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    """A body declared larger than the app takes: refused before it is read, with the body of
    every refusal (FastAPI's own limit would answer plain text)."""
    body = ErrorOut(detail="the request body is too large", code="too_large")
    await JSONResponse(body.model_dump(exclude_none=True), 413)(scope, receive, send)


async def _recover(services: Services) -> None:
    try:  # one EXISTS; Redis restarted empty: find callers and advisers again
        await services.recovery.check()
    except Exception:  # Twilio or the database away: the lock expires, a later tick retries
        log.exception("recovery after a Redis loss failed")


async def _tick_forever(services: Services) -> None:
    ticks = 0
    recovering: asyncio.Task[None] | None = None
    with contextlib.suppress(Exception):  # Redis away at start: the ticks' checks find it
        await services.recovery.adopt()  # a Redis of the release before: no marker, not lost
    while True:
        await asyncio.sleep(TICK_SECONDS)
        ticks += 1
        # In the background: a recovery (Twilio's queues with their retries, the database)
        # must not hold up this instance's deadlines, wrap-ups and matching.
        if recovering is None or recovering.done():
            recovering = asyncio.create_task(_recover(services))
        try:
            await services.router.tick()
        except Exception:  # Redis away for a moment: try again next tick
            log.exception("routing tick failed")
        # Records waiting in the outbox (the database was away, or another instance stopped):
        # written in the background, unless a failed write asked to wait longer
        # (routing/outbox.py); the next tick never waits for the database.
        services.records.drain_soon()
        services.state_outbox.drain_soon()  # callbacks and lock-outs, likewise
        if ticks % RECONCILE_TICKS == 0:
            try:
                await services.flows.reconcile()
            except Exception:
                log.exception("flow re-sync failed")
        if ticks % RETENTION_TICKS == 0:
            try:
                await services.retention.run_if_due()
            except Exception:  # the database away: the day's marker is freed, try again later
                log.exception("record purge failed")


async def _follow_master(redis: PipelinedRedis) -> None:
    asked = True  # the last question was answered: say so once when that changes
    while True:
        await asyncio.sleep(FOLLOW_MASTER_SECONDS)
        try:
            if await redis.follow_master():
                log.warning("the Sentinels name another Redis master: connections moved to it")
            asked = True
        except Exception:  # no Sentinel answers: the commands find that out themselves
            if asked:
                log.warning("no Sentinel says where the Redis master is", exc_info=True)
            asked = False


@asynccontextmanager
async def _serving(services: Services) -> AsyncIterator[None]:
    """The background tasks while the server runs; the services closed when it stops."""
    log.info(
        "kcc-ivr ready",
        extra={"flow": services.flows.name, "flow_version": services.flows.current.digest},
    )
    tasks = [
        asyncio.create_task(services.records.drain()),  # what waited while no instance ran
        asyncio.create_task(services.state_outbox.drain()),
        asyncio.create_task(_tick_forever(services)),
        asyncio.create_task(services.flows.listen()),
    ]
    if isinstance(services.redis, PipelinedRedis) and services.redis.follows_sentinel:
        tasks.append(asyncio.create_task(_follow_master(services.redis)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await services.close()


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
        # The server's life (uvicorn runs this; in-process test clients and `kcc call` do not):
        # on the embedded store, one process per database (api/instance_lock.py).
        try:
            instance_lock = await anyio.to_thread.run_sync(
                lock_embedded_store, settings.redis_url, settings.database_url
            )
        except InstanceLocked as exc:
            log.error("refusing to start: %s", exc)
            await services.close()
            raise
        try:
            async with _serving(services):
                yield
        finally:
            if instance_lock is not None:
                await anyio.to_thread.run_sync(instance_lock.release)

    app = KccApp(
        title="kcc-ivr",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
        openapi_url=pages.OPENAPI_URL,
        docs_url=None,  # pages.py serves /docs from the package's copy of Swagger UI, no CDN
        redoc_url=None,  # ReDoc would come from a CDN
    )
    app.state.services = services
    app.twilio_edge = WebhookDispatcher(HANDLERS, services)
    app.body_seconds = settings.body_timeout_seconds
    for router in API_ROUTERS:
        declare_refusals(router)  # every route's refusals in the OpenAPI document
        app.include_router(router)
    for router in OTHER_ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    install_error_handlers(app)
    return app
