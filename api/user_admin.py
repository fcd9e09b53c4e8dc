"""Managing staff accounts: list, add, change skills/device/role, reset a password, deactivate
and reactivate, each change written to the `user_audit` log in the same transaction. The API
(api/web/routes/users.py) and `kcc users` both go through here, so both check and log alike."""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime
from sqlmodel import Field, Session, SQLModel, col, select

from api.accounts import (
    DEVICE,
    MIN_PASSWORD_LENGTH,
    InvalidUser,
    Role,
    User,
    UserError,
    create_user,
    device_of,
    get_user,
    hash_password,
    revoke_all_tokens,
)
from flows.errors import ErrorKind

# A generated password: 16 URL-safe characters (96 bits), shown once and never stored plainly.
GENERATED_PASSWORD_BYTES = 12
AUDIT_LIMIT = 500


class UserAction(StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    PASSWORD_RESET = "password_reset"
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"


class UserAuditRow(SQLModel, table=True):
    """Who changed which account, when and what (never a password or its hash)."""

    __tablename__ = "user_audit"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    actor: str = Field(max_length=80)  # a supervisor's name, or "cli:<login>"
    action: str = Field(max_length=32)
    subject: str = Field(index=True, max_length=64)
    details: str = Field(default="{}", max_length=4000)  # JSON: what changed


class UnknownUser(UserError):
    code = "user_unknown"
    kind = ErrorKind.NOT_FOUND


class FieldInvalid(InvalidUser):
    """A field of a change is not acceptable; `field` names it, `code` says why."""

    def __init__(self, code: str, field: str, message: str, **params: str | int | None) -> None:
        super().__init__(message, field=field, **params)
        self.code = code


class SelfChangeRefused(UserError):
    """A supervisor may not lock themself out (deactivate or demote their own account)."""

    kind = ErrorKind.CONFLICT

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class UserChange:
    """What to change; None leaves it as it is."""

    skills: Sequence[str] | None = None
    device: str | None = None
    role: Role | None = None


def generate_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def _now() -> datetime:
    return datetime.now(UTC)


def _record(
    session: Session, actor: str, action: UserAction, subject: str, details: dict[str, Any]
) -> None:
    session.add(
        UserAuditRow(
            at=_now(),
            actor=actor,
            action=action.value,
            subject=subject,
            details=json.dumps(details, sort_keys=True),
        )
    )


def skills_of(user: User) -> list[str]:
    return [s for s in user.skills.split(",") if s]


def _checked_skills(skills: Sequence[str], products: Collection[str]) -> list[str]:
    cleaned = list(dict.fromkeys(s.strip() for s in skills if s.strip()))
    unknown = [s for s in cleaned if s not in products]
    if unknown:
        raise FieldInvalid(
            "skill_unknown",
            "skills",
            f"unknown product(s) {', '.join(unknown)} (products: {', '.join(products)})",
            skill=unknown[0],
        )
    return cleaned


def _checked_device(device: str) -> str:
    if not DEVICE.match(device):
        raise FieldInvalid(
            "device_invalid",
            "device",
            "device must be client:NAME (letters, digits, '_') or a phone number like "
            f"+31612345678, not {device!r}",
        )
    return device


def _checked_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise FieldInvalid(
            "password_too_short",
            "password",
            f"password too short: at least {MIN_PASSWORD_LENGTH} characters",
            min_length=MIN_PASSWORD_LENGTH,
        )
    return password


def _existing(session: Session, name: str) -> User:
    user = get_user(session, name)
    if user is None:
        raise UnknownUser(f"no user {name!r}", name=name)
    return user


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.name))).all())


def add_user(
    session: Session,
    *,
    actor: str,
    name: str,
    role: Role,
    products: Collection[str],
    password: str | None = None,
    skills: Sequence[str] = (),
    device: str | None = None,
) -> tuple[User, str | None]:
    """Add an account; without a password one is generated and returned (else None)."""
    generated = generate_password() if password is None else None
    if role is not Role.ADVISER and skills:
        raise FieldInvalid("skills_for_advisers", "skills", "skills are for advisers")
    user = create_user(
        session,
        name=name,
        role=role,
        password=_checked_password(password) if password is not None else str(generated),
        skills=_checked_skills(skills, products),
        device=_checked_device(device) if device else None,
    )
    details = {"role": role.value, "skills": skills_of(user), "device": user.device}
    _record(session, actor, UserAction.ADDED, name, details)
    return user, generated


def change_user(
    session: Session, *, actor: str, name: str, change: UserChange, products: Collection[str]
) -> User:
    """Apply `change`; the audit row holds every field that changed, before and after."""
    user = _existing(session, name)
    changed: dict[str, Any] = {}
    if change.role is not None and change.role is not user.role:
        if name == actor and user.role is Role.SUPERVISOR:
            raise SelfChangeRefused(
                "self_demotion", "you cannot take away your own supervisor role"
            )
        changed["role"] = {"from": user.role.value, "to": change.role.value}
        user.role = change.role
        revoke_all_tokens(session, user)  # tokens carry the role: the old ones stop working
    if change.skills is not None:
        skills = _checked_skills(change.skills, products)
        if skills and user.role is not Role.ADVISER:
            raise FieldInvalid("skills_for_advisers", "skills", "skills are for advisers")
        if skills != skills_of(user):
            changed["skills"] = {"from": skills_of(user), "to": skills}
            user.skills = ",".join(skills)
    if change.device is not None:
        device = _checked_device(change.device)
        if device != device_of(user):
            changed["device"] = {"from": device_of(user), "to": device}
            user.device = device
    if changed:
        session.add(user)
        _record(session, actor, UserAction.CHANGED, name, changed)
    return user


def reset_password(session: Session, *, actor: str, name: str, password: str | None = None) -> str:
    """Set a new password: `password`, or a generated one. Returns it (to show once)."""
    user = _existing(session, name)
    new = _checked_password(password) if password is not None else generate_password()
    user.password_hash = hash_password(new)
    revoke_all_tokens(session, user)  # whoever knew the old password is signed out too
    session.add(user)
    _record(session, actor, UserAction.PASSWORD_RESET, name, {"generated": password is None})
    return new


def set_active(session: Session, *, actor: str, name: str, active: bool) -> User:
    """Deactivate (cannot sign in; tokens refused) or reactivate an account."""
    user = _existing(session, name)
    if not active and name == actor:
        raise SelfChangeRefused("self_deactivation", "you cannot deactivate your own account")
    if user.active != active:
        user.active = active
        if not active:
            revoke_all_tokens(session, user)
        session.add(user)
        action = UserAction.REACTIVATED if active else UserAction.DEACTIVATED
        _record(session, actor, action, name, {})
    return user


def user_audit(session: Session, *, subject: str | None = None) -> list[UserAuditRow]:
    """The newest entries first (at most AUDIT_LIMIT)."""
    query = select(UserAuditRow)
    if subject is not None:
        query = query.where(UserAuditRow.subject == subject)
    query = query.order_by(col(UserAuditRow.at).desc(), col(UserAuditRow.id).desc())
    return list(session.exec(query.limit(AUDIT_LIMIT)).all())
