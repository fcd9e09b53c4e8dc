"""Staff accounts (supervisors, advisers, and viewers for the wallboard) and their passwords."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import DateTime
from sqlalchemy import Enum as SAEnum
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from flows.errors import ErrorKind, KccError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9._-]{1,63}")
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()


class Role(StrEnum):
    SUPERVISOR = "supervisor"
    ADVISER = "adviser"
    VIEWER = "viewer"  # the room's screen: the wallboard and nothing else


class UserError(KccError):
    """A user could not be created or changed."""

    code = "user_error"
    kind = ErrorKind.INVALID


class UserExists(UserError):
    """The name is already taken."""

    code = "user_exists"
    kind = ErrorKind.CONFLICT


class InvalidUser(UserError):
    """The name or password does not meet the rules."""

    code = "user_invalid"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _first_token_version() -> int:
    return secrets.randbelow(2**30)


class UserBase(SQLModel):
    name: str = Field(unique=True, index=True, max_length=64)
    # Stored as the plain value ("adviser") in a VARCHAR, not a PostgreSQL ENUM type, so a new
    # role needs no ALTER TYPE.
    role: Role = Field(
        sa_type=SAEnum(
            Role,
            native_enum=False,
            length=32,
            values_callable=lambda roles: [role.value for role in roles],
        )
    )


class User(UserBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    password_hash: str
    # Advisers: the products they handle (comma separated; empty: all) and what rings when a
    # call is offered: "client:NAME" (browser softphone) or a phone number.
    skills: str = Field(default="", max_length=512)
    device: str = Field(default="", max_length=64)
    # SQLite hands timestamps back naive; they are still UTC.
    created_at: datetime = Field(default_factory=_utcnow, sa_type=DateTime(timezone=True))
    active: bool = True
    # Every token carries the version it was issued under; raising it (revoke_all_tokens)
    # signs out every token given before. A new account starts at a random one: SQLite gives a
    # deleted account's id to the next, and that one must not accept the old tokens.
    token_version: int = Field(
        default_factory=_first_token_version, sa_column_kwargs={"server_default": "0"}
    )


class UserPublic(UserBase):
    """What the API shows of a user: never the password hash."""

    id: int


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the name is unknown, so that costs as much as a real check."""
    return _hasher.hash("not the password of anyone")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _validate(name: str, password: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidUser(
            f"invalid user name {name!r}: 2-64 characters, a lowercase letter first, "
            "then lowercase letters, digits, '.', '_' or '-'",
            field="name",
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidUser(
            f"password too short: at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )


def get_user(session: Session, name: str) -> User | None:
    return session.exec(select(User).where(User.name == name)).first()


CLIENT = "client:"
# Twilio takes only letters, digits and '_' in a browser phone's identity (<Client>, tokens).
DEVICE = re.compile(r"^(client:[A-Za-z0-9_]{1,64}|\+[1-9][0-9]{6,14})$")


def default_device(name: str) -> str:
    """The browser phone of a staff member: their name as Twilio takes it ('.' and '-' -> '_')."""
    return CLIENT + re.sub(r"[^A-Za-z0-9_]", "_", name)


def device_of(user: User) -> str:
    """What rings for this staff member; accounts made before devices were stored get their
    browser phone."""
    return user.device or default_device(user.name)


def browser_identity(device: str) -> str | None:
    """The Voice SDK identity of a `client:NAME` device; None for a phone number."""
    if not device.startswith(CLIENT):
        return None
    return device.removeprefix(CLIENT)


def staff_devices(session: Session) -> frozenset[str]:
    """The devices of every active staff member (who may call out from a browser phone, and
    whom a colleague may call); a viewer (the room's screen) has no phone."""
    users = session.exec(
        select(User).where(User.active == True, User.role != Role.VIEWER)  # noqa: E712
    ).all()
    return frozenset(device_of(user) for user in users)


def create_user(
    session: Session,
    *,
    name: str,
    role: Role,
    password: str,
    skills: list[str] | None = None,
    device: str | None = None,
) -> User:
    """Add a user (flushed, so it has an id); the caller commits."""
    _validate(name, password)
    if get_user(session, name) is not None:
        raise UserExists(f"user {name!r} already exists")
    # Supervisors have a phone too: for listening in, and for calling out from their page.
    device = device or default_device(name)
    if not DEVICE.match(device):
        raise InvalidUser(
            "device must be client:NAME (letters, digits, '_') or a phone number like "
            f"+31612345678, not {device!r}",
            field="device",
        )
    user = User(
        name=name,
        role=role,
        password_hash=_hasher.hash(password),
        skills=",".join(skills or []),
        device=device,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        # Another transaction took the name between the check and the insert.
        session.rollback()
        raise UserExists(f"user {name!r} already exists") from exc
    return user


def authenticate(session: Session, *, name: str, password: str) -> User | None:
    """The active user with this name and password, else None (whichever part was wrong)."""
    user = get_user(session, name)
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        # The hashing parameters were raised since this hash was made; upgrade it now that we
        # have the password. The caller's commit stores it.
        user.password_hash = _hasher.hash(password)
        session.add(user)
    return user


def revoke_all_tokens(session: Session, user: User) -> None:
    """Sign the user out everywhere: every token issued before no longer works. For a changed
    password or role, a deactivation, or a lost laptop; the caller commits."""
    user.token_version += 1
    session.add(user)


def change_password(session: Session, user: User, password: str) -> None:
    """A new password; tokens issued under the old one stop working. The caller commits."""
    _validate(user.name, password)
    user.password_hash = _hasher.hash(password)
    revoke_all_tokens(session, user)


def change_role(session: Session, user: User, role: Role) -> None:
    """A new role; tokens issued for the old one stop working. The caller commits."""
    if user.role is not role:
        user.role = role
        revoke_all_tokens(session, user)


def active_advisers(session: Session) -> list[User]:
    return list(
        session.exec(
            select(User).where(User.role == Role.ADVISER, User.active == True)  # noqa: E712
        ).all()
    )


def adviser_skills(session: Session) -> dict[str, list[str]]:
    """Every active adviser and the products they take (an empty list: every product)."""
    return {
        user.name: [s for s in user.skills.split(",") if s] for user in active_advisers(session)
    }
