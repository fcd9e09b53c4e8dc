"""JSON API for supervisors: the staff accounts (Medewerkers). The rules and the audit log are
api/user_admin.py, shared with `kcc users`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import anyio.to_thread
from fastapi import APIRouter, status
from pydantic import BaseModel, Field
from sqlmodel import Session

from api import user_admin
from api.accounts import Role, User, device_of
from api.database.engine import session_scope
from api.services import Services
from api.web.deps import ServicesDep, SupervisorUser
from api.web.refusals import refusals
from flows.errors import ErrorKind
from routing.board import Command, InvalidTransition

# 404: no such account; 409: the name is taken, or the change would leave no supervisor.
router = APIRouter(
    prefix="/api/users",
    tags=["users"],
    responses=refusals(ErrorKind.NOT_FOUND, ErrorKind.CONFLICT),
)

T = TypeVar("T")


class UserOut(BaseModel):
    name: str
    role: Role
    skills: list[str]  # an adviser's products; empty: every product
    device: str
    active: bool
    created_at: datetime


class NewUser(BaseModel):
    name: str = Field(max_length=64)
    role: Role = Role.ADVISER
    skills: list[str] = Field(default_factory=list, max_length=50)
    device: str | None = Field(default=None, max_length=64)
    # Without one a password is generated and shown once in the answer.
    password: str | None = Field(default=None, max_length=200)


class UserPatch(BaseModel):
    skills: list[str] | None = Field(default=None, max_length=50)
    device: str | None = Field(default=None, max_length=64)
    role: Role | None = None


class PasswordIn(BaseModel):
    password: str | None = Field(default=None, max_length=200)  # None: generate one


class AddedOut(UserOut):
    password: str | None  # the generated one-time password; None when one was given


class PasswordOut(BaseModel):
    name: str
    password: str | None  # the generated password (shown once); None when one was given
    generated: bool


class StandingOut(UserOut):
    # A deactivated adviser's desk is signed out at once, unless they are in a call (then the
    # call ends first; their token is refused from now on).
    signed_out: bool | None = None


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: Literal["added", "changed", "password_reset", "deactivated", "reactivated"]
    subject: str
    details: dict[str, Any]


def _out(user: User) -> UserOut:
    return UserOut(
        name=user.name,
        role=user.role,
        skills=user_admin.skills_of(user),
        device=device_of(user),
        active=user.active,
        created_at=_utc(user.created_at),
    )


def _utc(at: datetime) -> datetime:
    """SQLite hands times back without their offset: they are UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def _in_session(services: Services, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with session_scope(services.db_engine) as session:
            return work(session)

    return await anyio.to_thread.run_sync(run)


def _products(services: Services) -> list[str]:
    return list(services.flows.flow.products)


@router.get("")
async def users(services: ServicesDep, _: SupervisorUser) -> list[UserOut]:
    return await _in_session(services, lambda s: [_out(u) for u in user_admin.list_users(s)])


@router.get("/audit")
async def audit(services: ServicesDep, _: SupervisorUser) -> list[AuditOut]:
    def read(session: Session) -> list[AuditOut]:
        return [
            AuditOut(
                at=_utc(row.at),
                actor=row.actor,
                action=row.action,
                subject=row.subject,
                details=json.loads(row.details),
            )
            for row in user_admin.user_audit(session)
        ]

    return await _in_session(services, read)


@router.post("", status_code=status.HTTP_201_CREATED)
async def add(services: ServicesDep, body: NewUser, me: SupervisorUser) -> AddedOut:
    def work(session: Session) -> AddedOut:
        user, generated = user_admin.add_user(
            session,
            actor=me.name,
            name=body.name,
            role=body.role,
            products=_products(services),
            password=body.password,
            skills=body.skills,
            device=body.device,
        )
        return AddedOut(**_out(user).model_dump(), password=generated)

    return await _in_session(services, work)


@router.patch("/{name}")
async def change(services: ServicesDep, name: str, body: UserPatch, me: SupervisorUser) -> UserOut:
    change = user_admin.UserChange(skills=body.skills, device=body.device, role=body.role)

    def work(session: Session) -> UserOut:
        user = user_admin.change_user(
            session, actor=me.name, name=name, change=change, products=_products(services)
        )
        return _out(user)

    changed = await _in_session(services, work)
    # An adviser on the board takes the new skills and device with their next offer.
    if changed.role is Role.ADVISER and await services.router.board.view(name) is not None:
        skills = changed.skills or _products(services)
        await services.router.board.register(name, skills=skills, device=changed.device)
    return changed


@router.post("/{name}/reset-password")
async def reset_password(
    services: ServicesDep, name: str, me: SupervisorUser, body: PasswordIn | None = None
) -> PasswordOut:
    given = body.password if body is not None else None
    new = await _in_session(
        services,
        lambda s: user_admin.reset_password(s, actor=me.name, name=name, password=given),
    )
    return PasswordOut(name=name, password=None if given else new, generated=given is None)


@router.post("/{name}/deactivate")
async def deactivate(services: ServicesDep, name: str, me: SupervisorUser) -> StandingOut:
    user = await _in_session(
        services, lambda s: _out(user_admin.set_active(s, actor=me.name, name=name, active=False))
    )
    signed_out = None
    if await services.router.board.view(name) is not None:
        try:
            await services.router.adviser_command(name, Command.OFFLINE)
            signed_out = True
        except InvalidTransition:
            signed_out = False  # in a call: it ends first; the desk's token is refused already
    return StandingOut(**user.model_dump(), signed_out=signed_out)


@router.post("/{name}/reactivate")
async def reactivate(services: ServicesDep, name: str, me: SupervisorUser) -> StandingOut:
    user = await _in_session(
        services, lambda s: _out(user_admin.set_active(s, actor=me.name, name=name, active=True))
    )
    return StandingOut(**user.model_dump())
