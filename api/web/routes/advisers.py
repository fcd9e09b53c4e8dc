"""Advisers: their state, the desk's event stream, wrap-up, and the simulated phone of the demo."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.accounts import User, device_of
from api.services import Services
from api.web.deps import AdviserUser, ServicesDep, SupervisorUser
from api.web.errors import NotFound, WebError
from api.web.refusals import EVENT_STREAM, SEND_TIMEOUT_SECONDS, refusals
from flows.errors import ErrorKind
from ivr.departments import DepartmentClosed, Whisper, whisper_url
from ivr.records import RecordChange, outbox_item
from routing import keys
from routing.adviser_history import WrapUp
from routing.board import AdviserState, AdviserView, Command
from routing.entry import QueueEntry
from routing.presence import PhoneState
from routing.transfers import Target, TargetKind, Transfer, TransferMode

# 409: the adviser's state or call does not allow it; 404: no such target (or the demo's phone
# outside the demo); 502: Twilio. (422, e.g. a wrap-up code the flow lacks: routes with a body.)
router = APIRouter(
    prefix="/api",
    tags=["advisers"],
    responses=refusals(ErrorKind.CONFLICT, ErrorKind.NOT_FOUND, ErrorKind.UPSTREAM),
)


class TransferOut(BaseModel):
    """The transfer as it stands after the request."""

    to: str
    mode: TransferMode
    state: str  # started (the target is called), answered (warm: consult), done


def _transfer_out(transfer: Transfer, state: str | None = None) -> TransferOut:
    return TransferOut(
        to=transfer.target.name, mode=transfer.mode, state=state or transfer.state.value
    )


class AdviserOut(BaseModel):
    """The adviser's own view: their call with the caller's context."""

    name: str
    status: AdviserState
    since: datetime | None
    skills: list[str]
    device: str
    call: QueueEntry | None = None
    wrap_until: datetime | None = None
    hold: bool = False  # in a conversation: the caller is held
    mute: bool = False  # in a conversation: the adviser's phone is muted
    transfer: TransferOut | None = None  # a warm transfer in progress (a reloaded desk)


class SupervisedCall(BaseModel):
    """Who talks to whom, for supervisors: never the caller's personal context."""

    product: str
    theme: str
    since: datetime | None  # since the adviser's phone rang or they answered


class AdviserSummary(BaseModel):
    """An adviser as supervisors see them."""

    name: str
    status: AdviserState
    since: datetime | None
    skills: list[str]
    device: str
    call: SupervisedCall | None = None
    wrap_until: datetime | None = None


DESK_TAB = r"^[A-Za-z0-9_-]{1,64}$"  # a desk tab's id, made by the page


class PresenceIn(BaseModel):
    desk: str = Field(pattern=DESK_TAB, description="the tab's id, as given to the event stream")
    phone: PhoneState


class StatusIn(BaseModel):
    status: Literal["available", "break", "offline", "ready"]


class WrapUpIn(BaseModel):
    # a wrap-up code of the call's product or a shared one (the flow's wrap_up_codes)
    category: str = Field(min_length=1, max_length=64)
    note: str = Field(default="", max_length=2000)


def _when(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


async def _out(services: Services, view: AdviserView) -> AdviserOut:
    call = await services.queue.get(view.call_sid) if view.call_sid else None
    talking = view.state is AdviserState.ON_CALL and view.call_sid is not None
    conference = await services.router.conference_of(view.name) if talking else None
    transfer = (
        await services.router.transfer_of(view.call_sid) if talking and view.call_sid else None
    )
    if transfer is not None and transfer.adviser != view.name:
        transfer = None  # a warm transfer's colleague: the consult is the other adviser's
    return AdviserOut(
        transfer=_transfer_out(transfer) if transfer is not None else None,
        hold=conference.on_hold if conference else False,
        mute=conference.muted if conference else False,
        name=view.name,
        status=view.state.value,
        since=_when(view.since_ms),
        skills=view.skills,
        device=view.device,
        call=call,
        wrap_until=_when(view.wrap_until_ms),
    )


async def _registered(services: Services, user: User) -> AdviserView:
    """The adviser's live state, registering them (skills and device from the database)."""
    skills = [s for s in user.skills.split(",") if s] or list(services.flows.flow.products)
    await services.router.board.register(user.name, skills=skills, device=device_of(user))
    view = await services.router.board.view(user.name)
    assert view is not None
    return view


@router.get("/advisers/me")
async def me(services: ServicesDep, user: AdviserUser) -> AdviserOut:
    return await _out(services, await _registered(services, user))


@router.post("/advisers/me/status")
async def set_status(services: ServicesDep, user: AdviserUser, body: StatusIn) -> AdviserOut:
    await _registered(services, user)
    await services.router.adviser_command(user.name, Command(body.status))
    view = await services.router.board.view(user.name)
    assert view is not None
    return await _out(services, view)


async def _summary(services: Services, view: AdviserView) -> AdviserSummary:
    entry = await services.queue.get(view.call_sid) if view.call_sid else None
    call = (
        SupervisedCall(product=entry.product, theme=entry.theme, since=_when(view.since_ms))
        if entry is not None
        else None
    )
    return AdviserSummary(
        name=view.name,
        status=view.state,
        since=_when(view.since_ms),
        skills=view.skills,
        device=view.device,
        call=call,
        wrap_until=_when(view.wrap_until_ms),
    )


@router.get("/advisers")
async def advisers(services: ServicesDep, _: SupervisorUser) -> list[AdviserSummary]:
    return [await _summary(services, view) for view in await services.router.board.views()]


class Colleague(BaseModel):
    """A colleague as a transfer's target: name and skills, nothing of their calls."""

    name: str
    skills: list[str]


@router.get("/advisers/available")
async def available_colleagues(services: ServicesDep, user: AdviserUser) -> list[Colleague]:
    """Advisers: the colleagues available now, whom a call can be transferred to."""
    return [
        Colleague(name=view.name, skills=view.skills)
        for view in await services.router.board.views()
        if view.state is AdviserState.AVAILABLE and view.name != user.name
    ]


@router.post("/advisers/me/presence", status_code=status.HTTP_204_NO_CONTENT)
async def presence(services: ServicesDep, user: AdviserUser, body: PresenceIn) -> None:
    """The desk tab's browser phone is registered (can ring) or not."""
    await _registered(services, user)
    await services.router.phone_reported(user.name, body.desk, body.phone)


@router.post("/advisers/me/wrap-up", status_code=status.HTTP_204_NO_CONTENT)
async def wrap_up(services: ServicesDep, user: AdviserUser, body: WrapUpIn) -> None:
    """Save the subject (a wrap-up code of the call's product, or a shared one) and a note of
    the adviser's current or last call: 422 wrap_up_code_unknown for another code, 409
    wrap_up_done when this call is wrapped up already."""
    view = await _registered(services, user)
    call_sid = view.call_sid or view.last_call_sid  # wrap-up time may be over already
    if call_sid is None:
        raise WebError("no_call_to_wrap_up", "there is no call to wrap up")
    entry = await services.queue.get(view.call_sid) if view.call_sid else None
    product = entry.product if entry is not None else view.last_product
    # The live flow's codes: the ones the desk offers (GET /api/config).
    services.flows.flow.wrap_up_codes.check(product, body.category)
    record = WrapUp(
        adviser=user.name,
        call_sid=call_sid,
        category=body.category,
        note=body.note,
        at=datetime.now(UTC),
    )
    await anyio.to_thread.run_sync(services.adviser_log.wrap_up, record)
    # The call's record (written when the call ended) gets the code and the time it took.
    change = RecordChange(
        call_sid=call_sid, noted_at=services.clock.now(), wrap_up_code=body.category
    )
    await services.records.push(outbox_item(change))


class HoldIn(BaseModel):
    hold: bool


class MuteIn(BaseModel):
    mute: bool


class CallControlOut(BaseModel):
    """The adviser's call controls as they stand after the request."""

    hold: bool  # the caller is held
    mute: bool  # the adviser's own phone is muted in the conference
    hold_seconds: int  # the caller was held this long in this call, so far


async def _controls(services: Services, user: User, hold_ms: int | None = None) -> CallControlOut:
    conference = await services.router.conference_of(user.name)
    if conference is None:
        return CallControlOut(hold=False, mute=False, hold_seconds=0)
    held = conference.held_ms if hold_ms is None else hold_ms
    return CallControlOut(
        hold=conference.on_hold, mute=conference.muted, hold_seconds=round(held / 1000)
    )


@router.post("/advisers/me/call/hold")
async def hold_call(services: ServicesDep, user: AdviserUser, body: HoldIn) -> CallControlOut:
    """Hold the caller (they hear the flow's hold music in their language), or bring them back."""
    view = await _registered(services, user)
    entry = await services.queue.get(view.call_sid) if view.call_sid else None
    loaded = (
        await services.flows.version(entry.flow_version)
        if entry is not None and entry.flow_version
        else services.flows.current
    )
    flow = loaded.engine.flow
    language = entry.language if entry is not None else flow.default_language
    music = flow.queue.conversation_hold_music(language)
    held = await services.router.hold(user.name, body.hold, music)
    return await _controls(services, user, held.held_ms)


@router.post("/advisers/me/call/mute")
async def mute_call(services: ServicesDep, user: AdviserUser, body: MuteIn) -> CallControlOut:
    """Mute the adviser's phone in the conference (a phone number; the browser phone can mute
    itself, but this works for it too)."""
    await _registered(services, user)
    await services.router.mute(user.name, body.mute)
    return await _controls(services, user)


TRANSFER_TARGET = r"^(department|adviser|queue):[A-Za-z0-9_.-]{1,64}$"


class TransferIn(BaseModel):
    to: str = Field(
        pattern=TRANSFER_TARGET,
        description="department:KEY, adviser:NAME or queue:PRODUCT",
        examples=["department:gratie", "adviser:j.devries", "queue:vog_np"],
    )
    mode: TransferMode = TransferMode.COLD
    note: str = Field(
        default="", max_length=500, description="for the target (spoken to a department)"
    )


@router.post("/advisers/me/call/transfer")
async def transfer_call(services: ServicesDep, user: AdviserUser, body: TransferIn) -> TransferOut:
    """Transfer the caller to a department, a colleague or a product's queue, cold (at once:
    the adviser goes to wrap-up) or warm (consult first; then complete or cancel)."""
    view = await _registered(services, user)
    kind_text, key = body.to.split(":", 1)
    kind = TargetKind(kind_text)
    entry = await services.queue.get(view.call_sid) if view.call_sid else None
    loaded = (
        await services.flows.version(entry.flow_version)
        if entry is not None and entry.flow_version
        else services.flows.current
    )
    flow = loaded.engine.flow
    language = entry.language if entry is not None else flow.default_language
    claimed = None
    if kind is TargetKind.DEPARTMENT:
        departments = services.flows.current.departments  # the live flow's, as the desk lists
        department = departments.get(key)
        if not departments.is_open(key, services.clock.now()):
            raise DepartmentClosed(key)
        base = services.settings.public_base
        call_sid = view.call_sid or ""
        target = Target(
            kind, key, to=department.phone, announce_url=whisper_url(base, key, call_sid)
        )
        whisper = Whisper(
            product=entry.product if entry else flow.queue.general_product,
            theme=entry.theme if entry else flow.queue.general_theme,
            note=body.note,
        )

        async def store_whisper() -> None:
            await services.whispers.put(call_sid, whisper)

        claimed = store_whisper
    elif kind is TargetKind.QUEUE:
        if key not in services.flows.current.engine.flow.products:
            raise NotFound("product_unknown", f"no product {key!r} in the live flow")
        target = Target(kind, key)
    else:
        target = Target(kind, key)
    transfer = await services.router.transfer(
        user.name,
        target,
        body.mode,
        note=body.note,
        hold_url=flow.queue.conversation_hold_music(language),
        claimed=claimed,
    )
    return _transfer_out(transfer)


@router.post("/advisers/me/call/transfer/complete")
async def complete_transfer(services: ServicesDep, user: AdviserUser) -> TransferOut:
    """Warm: the target answered; the adviser leaves, the caller and the target talk."""
    await _registered(services, user)
    return _transfer_out(await services.router.complete_transfer(user.name), "done")


@router.post("/advisers/me/call/transfer/cancel")
async def cancel_transfer(services: ServicesDep, user: AdviserUser) -> TransferOut:
    """Warm: the target leaves; the adviser is back with the caller."""
    await _registered(services, user)
    return _transfer_out(await services.router.cancel_transfer(user.name), "cancelled")


@router.get("/advisers/me/events", response_class=EventSourceResponse, responses=EVENT_STREAM)
async def events(
    request: Request,
    services: ServicesDep,
    user: AdviserUser,
    desk: Annotated[str | None, Query(pattern=DESK_TAB)] = None,
) -> EventSourceResponse:
    """Server-sent events for this adviser only: offer, connected, ended (call context), state.

    The open stream is the adviser's presence: it beats for its desk tab (`desk`, made by the
    page) every few seconds and says when it closes (routing/presence.py)."""
    await _registered(services, user)
    tab = desk or secrets.token_urlsafe(12)
    router_ = services.router

    async def stream() -> AsyncIterator[ServerSentEvent]:
        events = router_.events.listen(user.name)
        await anext(events)  # subscribed first, then the state: no offer falls in between
        await router_.desk_beat(user.name, tab)
        next_beat = time.monotonic() + keys.DESK_BEAT_SECONDS
        try:
            view = await router_.board.view(user.name)
            if view is not None:
                yield ServerSentEvent(event="state", data=json.dumps({"status": view.state.value}))
            async for event, data in events:
                if await request.is_disconnected():
                    break
                if time.monotonic() >= next_beat:
                    await router_.desk_beat(user.name, tab)
                    next_beat = time.monotonic() + keys.DESK_BEAT_SECONDS
                if event:  # RESYNC too: the page reads its state again (desk.js)
                    yield ServerSentEvent(event=event, data=json.dumps(data, default=str))
        finally:
            await events.aclose()
            with anyio.CancelScope(shield=True):  # the stream may be cancelled: say it anyway
                await router_.desk_gone(user.name, tab)

    return EventSourceResponse(stream(), ping=15, send_timeout=SEND_TIMEOUT_SECONDS)


@router.post("/advisers/me/callback", status_code=status.HTTP_202_ACCEPTED)
async def call_back(services: ServicesDep, user: AdviserUser) -> dict[str, str]:
    """Call back the caller of the callback offered to this adviser."""
    view = await _registered(services, user)
    if view.offer_id is None:
        raise WebError("no_callback", "there is no callback to make")
    settings = services.settings
    if not settings.caller_id and not services.simulated_telephony:
        raise WebError("no_caller_id", "no KCC number to call from: set KCC_CALLER_ID")
    dialled = await services.router.call_back(
        view.offer_id,
        caller_id=settings.caller_id or "",
        status_callback=f"{settings.public_base}/twilio/status",
    )
    return {"call_sid": dialled}


# -- the simulated phone of the embedded demo (no Twilio account) ------------------------------


async def _simulated_offer(services: Services, user: User, missing: WebError) -> str:
    """The adviser's current offer, in the demo without Twilio only."""
    if not services.simulated_telephony:
        raise NotFound("demo_only", "only in the demo without Twilio")
    view = await _registered(services, user)
    if view.offer_id is None:
        raise missing
    return view.offer_id


@router.post("/advisers/me/answer", status_code=status.HTTP_204_NO_CONTENT)
async def answer(services: ServicesDep, user: AdviserUser) -> None:
    await services.router.answered(
        await _simulated_offer(services, user, WebError("no_call_ringing", "no call is ringing"))
    )


@router.post("/advisers/me/hang-up", status_code=status.HTTP_204_NO_CONTENT)
async def hang_up(services: ServicesDep, user: AdviserUser) -> None:
    missing = WebError("no_call", "there is no call")
    offer_id = await _simulated_offer(services, user, missing)
    await services.router.dial_finished(offer_id, "completed")
