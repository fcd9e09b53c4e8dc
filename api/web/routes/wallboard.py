"""The wallboard (routing/wallboard.py) for the room's screen and the supervisor's "Nu": as JSON
and as server-sent events. Supervisors and viewers; only supervisors get the advisers' names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.accounts import Role, User
from api.services import Services
from api.web.deps import ServicesDep, WallboardUser
from api.web.refusals import EVENT_STREAM, SEND_TIMEOUT_SECONDS
from api.web.routes.config import product_labels
from routing.board import AdviserState
from routing.wallboard import Wallboard

router = APIRouter(prefix="/api", tags=["wallboard"])

# How often an open stream reads the wallboard: no centre-wide event says "the lines or the
# advisers changed" (they change in many scripts), and a few Redis reads a second per screen
# are cheap. A change reaches the screen within this, plus the time to send it.
POLL_SECONDS = 1.0


class ProductOut(BaseModel):
    product: str
    label: str  # the live flow's label (the viewer cannot read /api/config)
    waiting: int  # callers on its line now (callbacks not included)
    oldest_wait_seconds: int  # the longest of their waits; 0 if none


class TodayOut(BaseModel):
    """Today's calls (the contact centre's day, Europe/Amsterdam)."""

    offered: int  # joined an adviser line
    answered: int  # put through to an adviser
    answered_in_sl: int  # of those: within sl_seconds
    abandoned: int  # left the line without an adviser
    service_level: float | None  # answered_in_sl / offered; null before the first call
    asa_seconds: float | None  # the mean wait of the answered calls; null before the first
    sl_seconds: int  # the service level's threshold


class AdviserLineOut(BaseModel):
    name: str
    state: AdviserState
    since: datetime | None
    product: str | None  # the product of their call (offered, on call), if any


class WallboardOut(BaseModel):
    at: datetime
    calls_in_menu: int
    products: list[ProductOut]
    advisers: dict[AdviserState, int]  # every state, zeros included
    today: TodayOut
    callbacks_waiting: int  # asked to be called back, not called yet


class SupervisorWallboardOut(WallboardOut):
    adviser_list: list[AdviserLineOut]  # supervisors only: never on the room's screen


def _out(board: Wallboard, labels: dict[str, str], *, names: bool) -> WallboardOut:
    today = board.today
    asa = today.asa_seconds
    fields = WallboardOut(
        at=board.at,
        calls_in_menu=board.calls_in_menu,
        products=[
            ProductOut(
                product=line.product,
                label=labels.get(line.product, line.product),
                waiting=line.waiting,
                oldest_wait_seconds=line.oldest_wait_seconds,
            )
            for line in board.products
        ],
        advisers=board.advisers,
        today=TodayOut(
            offered=today.offered,
            answered=today.answered,
            answered_in_sl=today.answered_in_sl,
            abandoned=today.abandoned,
            service_level=today.service_level,
            asa_seconds=None if asa is None else round(asa, 1),
            sl_seconds=board.service_level_seconds,
        ),
        callbacks_waiting=board.callbacks_waiting,
    )
    if not names:
        return fields
    advisers = [
        AdviserLineOut(name=a.name, state=a.state, since=a.since, product=a.product)
        for a in board.adviser_list
    ]
    return SupervisorWallboardOut(**dict(fields), adviser_list=advisers)


async def _read(services: Services, user: User) -> WallboardOut:
    names = user.role is Role.SUPERVISOR
    board = await services.wallboard.read(names=names)
    return _out(board, product_labels(services.flows.flow), names=names)


@router.get("/wallboard", response_model=SupervisorWallboardOut | WallboardOut)
async def wallboard(services: ServicesDep, user: WallboardUser) -> WallboardOut:
    """Supervisors and viewers: the lines, the advisers per state and today's calls now.
    Supervisors also get `adviser_list` (names); viewers (the room's screen) never do."""
    return await _read(services, user)


@router.get("/wallboard/events", response_class=EventSourceResponse, responses=EVENT_STREAM)
async def wallboard_events(
    request: Request, services: ServicesDep, user: WallboardUser
) -> EventSourceResponse:
    """Server-sent events: `wallboard` with the snapshot (as GET /api/wallboard) at once, and
    again within 2 seconds of any change."""

    async def stream() -> AsyncIterator[ServerSentEvent]:
        sent: WallboardOut | None = None
        while not await request.is_disconnected():
            board = await _read(services, user)
            if sent is None or board.model_copy(update={"at": sent.at}) != sent:
                sent = board
                yield ServerSentEvent(event="wallboard", data=board.model_dump_json())
            await anyio.sleep(POLL_SECONDS)

    return EventSourceResponse(stream(), ping=15, send_timeout=SEND_TIMEOUT_SECONDS)
