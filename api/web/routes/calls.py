"""Conversations in progress, for supervisors: list them, and listen, whisper or barge in
(routing/monitoring.py), with the audit log of every monitor session."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.accounts import device_of
from api.services import Services
from api.web.deps import ServicesDep, SupervisorUser
from api.web.errors import NotFound, RequestInvalid
from api.web.params import IsoDateTime
from api.web.refusals import refusals
from flows.errors import ErrorKind
from routing.board import AdviserState
from routing.monitor_log import MonitorSessionRecord
from routing.monitoring import EndReason, MonitorMode, MonitorSession, MonitorState
from routing.transfers import TargetKind, TransferState

# 404: no such call or session; 409: the call cannot be monitored now; 502: Twilio.
router = APIRouter(
    prefix="/api",
    tags=["calls"],
    responses=refusals(ErrorKind.NOT_FOUND, ErrorKind.CONFLICT, ErrorKind.UPSTREAM),
)

CALL_SID = r"^CA[0-9a-fA-F]{32}$"
CallSid = Annotated[str, Path(pattern=CALL_SID, description="the caller's CallSid")]


class MonitorOut(BaseModel):
    """A supervisor's monitor session of a call."""

    supervisor: str
    mode: MonitorMode
    state: MonitorState  # ringing, active; ended or failed (then `reason` says why)
    reason: EndReason | None = None
    since: datetime


class CallInProgress(BaseModel):
    """A conversation as supervisors see it: who talks to whom, never the caller's context."""

    call_sid: str
    adviser: str
    product: str
    theme: str
    language: str
    since: datetime | None = Field(description="since the adviser answered")
    on_hold: bool
    monitorable: bool = Field(description="in a conference (not the demo's simulated phone)")
    monitors: list[MonitorOut] = Field(description="the supervisors monitoring it now")
    mine: MonitorOut | None = Field(
        description="your own session of this call: live, or how the last one ended"
    )


class MonitorIn(BaseModel):
    mode: MonitorMode


class MonitorSessionOut(BaseModel):
    """One row of the audit log."""

    id: str
    supervisor: str
    call_sid: str
    adviser: str
    product: str
    mode: MonitorMode = Field(description="the last mode")
    modes: list[dict[str, str]] = Field(description='every mode: {"mode", "at"}')
    state: MonitorState
    reason: EndReason | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    seconds: int | None = Field(description="time in the conference: answered to ended")


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _monitor(session: MonitorSession) -> MonitorOut:
    return MonitorOut(
        supervisor=session.supervisor,
        mode=session.mode,
        state=session.state,
        reason=session.reason,
        since=_when(session.started_ms),
    )


async def _calls(services: Services, me: str) -> list[CallInProgress]:
    found: list[CallInProgress] = []
    for view in await services.router.board.views():
        if view.state is not AdviserState.ON_CALL or view.call_sid is None:
            continue
        # A colleague consulted in a warm transfer is in the same call: the call is listed
        # once, under the adviser who transfers it, until the hand-over makes it the colleague's.
        transfer = await services.router.transfer_of(view.call_sid)
        if (
            transfer is not None
            and transfer.state is not TransferState.HANDED_OVER
            and transfer.target.kind is TargetKind.ADVISER
            and transfer.target.key == view.name
        ):
            continue
        entry = await services.queue.get(view.call_sid)
        conference = await services.router.conference_of(view.name)
        sessions = await services.monitors.sessions(view.call_sid)
        own = sessions.get(me)
        found.append(
            CallInProgress(
                call_sid=view.call_sid,
                adviser=view.name,
                product=entry.product if entry else "",
                theme=entry.theme if entry else "",
                language=entry.language if entry else "",
                since=_when(view.since_ms) if view.since_ms else None,
                on_hold=conference.on_hold if conference else False,
                monitorable=bool(conference and conference.sid and conference.caller_leg),
                monitors=[_monitor(s) for s in sessions.values() if s.live],
                mine=_monitor(own) if own is not None else None,
            )
        )
    return found


@router.get("/calls")
async def calls(services: ServicesDep, user: SupervisorUser) -> list[CallInProgress]:
    """Conversations in progress: adviser, product, theme, language, since when, on hold, who
    monitors them."""
    return await _calls(services, user.name)


@router.get("/calls/{call_sid}/monitor")
async def my_monitor(services: ServicesDep, user: SupervisorUser, call_sid: CallSid) -> MonitorOut:
    """Your session of this call: live, or how the last one ended (e.g. your phone did not
    answer)."""
    session = await services.monitors.session(call_sid, user.name)
    if session is None:
        raise NotFound("not_monitoring", "you have no session of this call")
    return _monitor(session)


@router.post("/calls/{call_sid}/monitor")
async def monitor(
    services: ServicesDep, user: SupervisorUser, call_sid: CallSid, body: MonitorIn
) -> MonitorOut:
    """Listen (muted), whisper (only the adviser hears you) or barge in, with your own device;
    a second request with another mode switches."""
    session = await services.monitors.monitor(user.name, device_of(user), call_sid, body.mode)
    return _monitor(session)


@router.delete("/calls/{call_sid}/monitor")
async def stop_monitoring(
    services: ServicesDep, user: SupervisorUser, call_sid: CallSid
) -> MonitorOut:
    """Leave: your device is taken out of the conversation."""
    return _monitor(await services.monitors.stop(user.name, call_sid))


def _session_out(row: MonitorSessionRecord) -> MonitorSessionOut:
    def aware(at: datetime | None) -> datetime | None:  # SQLite hands them back naive (UTC)
        return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at

    modes: list[dict[str, Any]] = json.loads(row.modes)
    started = aware(row.started_at)
    assert started is not None
    return MonitorSessionOut(
        id=row.id,
        supervisor=row.supervisor,
        call_sid=row.call_sid,
        adviser=row.adviser,
        product=row.product,
        mode=MonitorMode(row.mode),
        modes=[{"mode": str(m["mode"]), "at": str(m["at"])} for m in modes],
        state=MonitorState(row.state),
        reason=EndReason(row.reason) if row.reason else None,
        started_at=started,
        answered_at=aware(row.answered_at),
        ended_at=aware(row.ended_at),
        seconds=row.seconds,
    )


@router.get("/monitor-sessions")
async def monitor_sessions(
    services: ServicesDep,
    _: SupervisorUser,
    start: Annotated[
        IsoDateTime | None, Query(alias="from", description="started at or after")
    ] = None,
    end: Annotated[IsoDateTime | None, Query(alias="to", description="started before")] = None,
) -> list[MonitorSessionOut]:
    """The audit log: every monitor session started in [from, to), oldest first."""
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and end <= start:
        raise RequestInvalid("range_invalid", "`to` must be after `from`", field="to")
    rows = await anyio.to_thread.run_sync(services.monitor_log.between, start, end)
    return [_session_out(row) for row in rows]


def _utc(at: datetime | None) -> datetime | None:
    """A time without an offset is UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at
