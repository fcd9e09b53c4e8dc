"""JSON API for supervisors: flow versions, drafts, publish and roll back, the calendar, closures
and the outage message."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from api.services import Services
from api.web.deps import ServicesDep, SupervisorUser
from api.web.errors import NotFound, ProblemOut, RequestInvalid, WebError
from api.web.params import IsoDate, LocalTime
from api.web.refusals import refusals
from flows.closures import (
    CLOSED_ALL_DAY,
    CLOSED_PART_OF_DAY,
    OUTAGE_MESSAGE,
    ClosedPart,
    ClosureError,
    hours_left_open,
    range_text,
    with_closure,
    with_outage,
    without_closure,
)
from flows.errors import ErrorKind, Problem
from flows.model import Flow
from flows.tree import FlowTree, MenuTree, flow_tree, menu_tree
from flows.version_summary import AuditOut, VersionSummary
from flows.versions import FlowVersion, LivePointer, version_diff
from ivr.engine import Engine
from ivr.flow_publishing import PublishedNotAnnounced
from ivr.flow_registry import load_version

# 404: no such version; 409: live already, the day has its own hours, nothing to change.
router = APIRouter(
    prefix="/api/flows",
    tags=["flows"],
    responses=refusals(ErrorKind.NOT_FOUND, ErrorKind.CONFLICT),
)

# A version's number: from 1, within the database's integer (a larger one is no version).
VersionNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]
MAX_FLOW_BYTES = 512 * 1024  # kcc.yaml is about 30 kB; a bigger draft is a mistake
CALENDAR_DAYS = 30


class ChangeAnswer(VersionSummary):
    announced: bool = True  # False: Redis could not be told; instances re-sync within 10 s
    note: str | None = None


class VersionText(VersionSummary):
    text: str


class Versions(BaseModel):
    flow: str
    live: int
    versions: list[VersionSummary]  # newest first


class DraftAnswer(BaseModel):
    ok: bool
    problems: list[ProblemOut]
    warnings: list[ProblemOut]


class Draft(BaseModel):
    text: str = Field(max_length=MAX_FLOW_BYTES)


class PublishRequest(Draft):
    comment: str = Field(default="", max_length=500)


class RollbackRequest(BaseModel):
    version: VersionNumber
    comment: str = Field(default="", max_length=500)


class DiffAnswer(BaseModel):
    a: int
    b: int
    diff: str  # unified diff from version a to version b


class CalendarDay(BaseModel):
    date: date
    open: bool
    hours: str | None  # "09:00-17:00"; None when closed all day
    reason: str | None  # holiday name or the exception's announcement


def _problems(problems: list[Problem]) -> list[ProblemOut]:
    return [
        ProblemOut(line=p.line, message=p.message, code=p.code, params=dict(p.params))
        for p in problems
    ]


async def _version(services: Services, number: int) -> FlowVersion:
    version: FlowVersion = await anyio.to_thread.run_sync(
        services.flow_versions.get, services.flows.name, number
    )
    return version


async def _live(services: Services) -> LivePointer:
    """The live pointer from the database (the truth; works while Redis is away)."""
    pointer: LivePointer | None = await anyio.to_thread.run_sync(
        services.flow_versions.live_pointer, services.flows.name
    )
    if pointer is None:  # cannot happen once the service has started
        raise NotFound("no_live_version", "no flow version is live")
    return pointer


async def _live_engine(services: Services) -> Engine:
    return (await services.flows.version((await _live(services)).digest)).engine


@router.get("")
async def versions(services: ServicesDep, _: SupervisorUser) -> Versions:
    history = await anyio.to_thread.run_sync(services.flow_versions.history, services.flows.name)
    live = await _live(services)
    return Versions(
        flow=services.flows.name,
        live=live.number,
        versions=[VersionSummary.of(v, live.number) for v in history],
    )


@router.get("/versions/{number}")
async def version(services: ServicesDep, number: VersionNumber, _: SupervisorUser) -> VersionText:
    stored = await _version(services, number)
    live = await _live(services)
    return VersionText(**VersionSummary.of(stored, live.number).model_dump(), text=stored.text)


@router.get("/diff")
async def diff(
    services: ServicesDep,
    a: Annotated[int, Query(ge=1, le=2**31 - 1)],
    _: SupervisorUser,
    b: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> DiffAnswer:
    """From version a to version b (default: the live one)."""
    b = b if b is not None else (await _live(services)).number
    old, new = await _version(services, a), await _version(services, b)
    return DiffAnswer(a=a, b=b, diff=version_diff(old, new))


@router.post("/validate")
async def validate(services: ServicesDep, draft: Draft, _: SupervisorUser) -> DraftAnswer:
    checked = await services.publisher.validate(draft.text)
    return DraftAnswer(
        ok=checked.ok, problems=_problems(checked.problems), warnings=_problems(checked.warnings)
    )


@router.post("/publish", status_code=status.HTTP_201_CREATED)
async def publish(
    services: ServicesDep, body: PublishRequest, user: SupervisorUser
) -> ChangeAnswer:
    try:
        version = await services.publisher.publish(
            body.text, author=user.name, comment=body.comment
        )
    except PublishedNotAnnounced as exc:
        return _unannounced(exc)
    return ChangeAnswer(**VersionSummary.of(version, version.number).model_dump())


def _unannounced(exc: PublishedNotAnnounced) -> ChangeAnswer:
    note = (
        "live in the database, but Redis could not be told: every instance takes it from the "
        "database within 10 s"
    )
    summary = VersionSummary.of(exc.version, exc.version.number)
    return ChangeAnswer(**summary.model_dump(), announced=False, note=note)


@router.post("/rollback")
async def rollback(
    services: ServicesDep, body: RollbackRequest, user: SupervisorUser
) -> ChangeAnswer:
    try:
        version = await services.publisher.rollback(
            body.version, actor=user.name, comment=body.comment
        )
    except PublishedNotAnnounced as exc:
        return _unannounced(exc)
    return ChangeAnswer(**VersionSummary.of(version, version.number).model_dump())


@router.get("/audit")
async def audit(services: ServicesDep, _: SupervisorUser) -> list[AuditOut]:
    entries = await anyio.to_thread.run_sync(services.flow_versions.audit, services.flows.name)
    return [AuditOut.of(e) for e in entries]


@router.get("/tree")
async def tree(
    services: ServicesDep,
    _: SupervisorUser,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> FlowTree:
    """The live flow (or `version`) as a readable tree."""
    if version is None:
        return flow_tree((await _live_engine(services)).flow)
    stored = await _version(services, version)
    loaded = await anyio.to_thread.run_sync(load_version, stored)
    return flow_tree(loaded.engine.flow)


@router.get("/calendar")
async def calendar(
    services: ServicesDep,
    _: SupervisorUser,
    start: Annotated[IsoDate | None, Query(description="first day (default: today)")] = None,
    days: Annotated[int, Query(ge=1, le=366)] = CALENDAR_DAYS,
    lang: Annotated[str | None, Query(max_length=8)] = None,
) -> list[CalendarDay]:
    """Open or closed, with the hours and why, for the next `days` days of the live flow."""
    engine = await _live_engine(services)
    language = lang if lang in engine.flow.languages else engine.flow.default_language
    timezone = engine.hours.timezone
    first = start or services.clock.now().astimezone(timezone).date()
    answer = []
    for offset in range(days):
        plan = engine.hours.day_plan(first + timedelta(days=offset))
        hours = plan.hours
        answer.append(
            CalendarDay(
                date=plan.day,
                open=hours is not None,
                hours=f"{hours.opens:%H:%M}-{_closes(hours.closes)}" if hours else None,
                reason=plan.reason.get(language) if plan.reason else None,
            )
        )
    return answer


def _closes(moment: object) -> str:
    text = f"{moment:%H:%M}"
    return "24:00" if text == "23:59" else text


# -- closures and the outage message (Sluitingen): a new version made from the live one ------


class ClosureRequest(BaseModel):
    date: IsoDate
    # Both or neither: close [closed_from, closed_until) and keep the rest of the day open;
    # neither: the whole day.
    closed_from: LocalTime | None = None
    closed_until: LocalTime | None = None
    announcement: dict[str, str] | None = Field(default=None, max_length=10)  # per language
    comment: str = Field(default="", max_length=500)


class ClosureOut(BaseModel):
    date: dt.date
    until: dt.date | None
    hours: str | None  # the hours left open; None: closed all day
    announcement: dict[str, str]


class OutageOut(BaseModel):
    active: bool
    prompt: dict[str, str]


class Closures(BaseModel):
    today: dt.date  # in the contact centre's time zone: the day a closure form starts on
    closures: list[ClosureOut]  # the live flow's exceptions from today on, by date
    outage: OutageOut


class OutageRequest(BaseModel):
    active: bool
    prompt: dict[str, str] | None = Field(default=None, max_length=10)  # None: keep / default
    comment: str = Field(default="", max_length=500)


def _texts_for(
    flow: Flow, given: Mapping[str, str] | None, default: Mapping[str, str]
) -> dict[str, str]:
    """A text per language of the flow: the given ones, the default for the rest."""
    given = {code: text.strip() for code, text in (given or {}).items() if text.strip()}
    unknown = sorted(set(given) - set(flow.languages))
    if unknown:
        raise RequestInvalid(
            "language_unknown", "no such language in the flow", language=unknown[0]
        )
    fallback = given.get(flow.default_language) or default.get(flow.default_language, "")
    return {code: given.get(code) or default.get(code) or fallback for code in flow.languages}


async def _publish_text(services: Services, text: str, author: str, comment: str) -> ChangeAnswer:
    try:
        version = await services.publisher.publish(text, author=author, comment=comment)
    except PublishedNotAnnounced as exc:
        return _unannounced(exc)
    return ChangeAnswer(**VersionSummary.of(version, version.number).model_dump())


async def _live_text(services: Services) -> str:
    return (await _version(services, (await _live(services)).number)).text


@router.get("/closures")
async def closures(services: ServicesDep, _: SupervisorUser) -> Closures:
    flow = (await _live_engine(services)).flow
    today = services.clock.now().astimezone(ZoneInfo(flow.calendar.timezone)).date()
    upcoming = [e for e in flow.calendar.exceptions if (e.until or e.date) >= today]
    outage = flow.outage
    return Closures(
        today=today,
        closures=[
            ClosureOut(
                date=e.date,
                until=e.until,
                hours=range_text(e.hours) if e.hours else None,
                announcement=dict(e.announcement),
            )
            for e in sorted(upcoming, key=lambda e: e.date)
        ],
        outage=OutageOut(
            active=bool(outage and outage.active),
            prompt=dict(outage.prompt) if outage else _texts_for(flow, None, OUTAGE_MESSAGE),
        ),
    )


@router.post("/closures", status_code=status.HTTP_201_CREATED)
async def close(services: ServicesDep, body: ClosureRequest, user: SupervisorUser) -> ChangeAnswer:
    """Close the centre on `date` (all day, or from/until a time): a new version."""
    if (body.closed_from is None) != (body.closed_until is None):
        raise RequestInvalid("range_incomplete", "give both closed_from and closed_until")
    engine = await _live_engine(services)
    part = (
        ClosedPart(body.closed_from, body.closed_until)
        if body.closed_from is not None and body.closed_until is not None
        else None
    )
    plan = engine.hours.day_plan(body.date)
    if plan.source == "exception":
        raise ClosureError("day_has_exception", "that day already has its own hours", conflict=True)
    hours = hours_left_open(plan.hours, part)
    default = CLOSED_ALL_DAY if hours is None else CLOSED_PART_OF_DAY
    announcement = _texts_for(engine.flow, body.announcement, default)
    text = with_closure(await _live_text(services), body.date, hours, announcement)
    what = "hele dag" if hours is None else f"open {range_text(hours)}"
    comment = body.comment or f"Gesloten op {body.date.isoformat()} ({what})"
    return await _publish_text(services, text, user.name, comment)


@router.delete("/closures/{day}")
async def reopen(
    services: ServicesDep,
    day: IsoDate,
    user: SupervisorUser,
    comment: Annotated[str, Query(max_length=500)] = "",
) -> ChangeAnswer:
    """Undo the closure (any calendar exception) of `day`: a new version without it."""
    text = without_closure(await _live_text(services), day)
    comment = comment or f"Sluiting van {day.isoformat()} ongedaan gemaakt"
    return await _publish_text(services, text, user.name, comment)


@router.put("/outage")
async def outage(services: ServicesDep, body: OutageRequest, user: SupervisorUser) -> ChangeAnswer:
    """Switch the outage message (said before the menu of every call) on or off."""
    flow = (await _live_engine(services)).flow
    current = dict(flow.outage.prompt) if flow.outage else {}
    prompt = _texts_for(flow, body.prompt or current, OUTAGE_MESSAGE)
    if flow.outage is not None and flow.outage.active == body.active and body.prompt is None:
        raise WebError("outage_unchanged", "the outage message is already so", active=body.active)
    text = with_outage(await _live_text(services), active=body.active, prompt=prompt)
    comment = body.comment or ("Storingsmelding aan" if body.active else "Storingsmelding uit")
    return await _publish_text(services, text, user.name, comment)


@router.get("/live/tree")
async def live_menu(
    services: ServicesDep,
    _: SupervisorUser,
    lang: Annotated[str | None, Query(max_length=8)] = None,
) -> MenuTree:
    """The live menu as callers meet it: what they hear, the keys, where each path ends."""
    flow = (await _live_engine(services)).flow
    return menu_tree(flow, lang if lang in flow.languages else flow.default_language)
