"""Published flow versions, the live pointer and the audit log, in the database.

A version is immutable: its YAML text, digest, author, time and comment. Exactly one version per
flow is live; publishing adds a version and makes it live, rolling back moves the live pointer to
an earlier version. Both write one audit row in the same transaction.
"""

from __future__ import annotations

import difflib
import hashlib
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Engine, UniqueConstraint, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import DateTime, Field, Session, SQLModel, Text, col, select

from flows.errors import ErrorKind, FlowError

CONCURRENT_TRIES = 10


def flow_digest(text: str) -> str:
    """The version id a call carries: the first 16 hex digits of the text's SHA-256."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FlowVersionRow(SQLModel, table=True):
    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("flow", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    flow: str = Field(index=True, max_length=64)
    number: int  # 1, 2, 3 ... per flow: what supervisors name
    digest: str = Field(index=True, max_length=16)
    text: str = Field(sa_type=Text)
    author: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    comment: str = Field(default="", max_length=500)


class FlowLiveRow(SQLModel, table=True):
    __tablename__ = "flow_live"

    flow: str = Field(primary_key=True, max_length=64)
    number: int
    since: datetime = Field(sa_type=DateTime(timezone=True))
    # +1 on every publish and rollback: orders the changes, so that a late announcement or a
    # slow re-sync can never put an older live version back (see LivePointer).
    generation: int = 0


class FlowAuditRow(SQLModel, table=True):
    __tablename__ = "flow_audit"

    id: int | None = Field(default=None, primary_key=True)
    flow: str = Field(index=True, max_length=64)
    at: datetime = Field(sa_type=DateTime(timezone=True))
    actor: str = Field(max_length=64)
    action: str = Field(max_length=16)
    from_number: int | None = None
    to_number: int
    comment: str = Field(default="", max_length=500)


class AuditAction(StrEnum):
    PUBLISH = "publish"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class FlowVersion:
    flow: str
    number: int
    digest: str
    text: str
    author: str
    created_at: datetime
    comment: str


@dataclass(frozen=True)
class AuditEntry:
    flow: str
    at: datetime
    actor: str
    action: AuditAction
    from_number: int | None
    to_number: int
    comment: str


@dataclass(frozen=True)
class LivePointer:
    """Which version is live, as every instance and Redis carry it: "generation:number:digest"."""

    generation: int
    number: int
    digest: str

    @property
    def value(self) -> str:
        return f"{self.generation}:{self.number}:{self.digest}"

    @classmethod
    def parse(cls, value: str) -> LivePointer | None:
        parts = value.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        return cls(int(parts[0]), int(parts[1]), parts[2])


class UnknownVersion(FlowError):
    code = "unknown_version"
    kind = ErrorKind.NOT_FOUND


class ConcurrentChange(FlowError):
    """Another publish or rollback changed the live version between our read and our write."""

    code = "concurrent_change"
    kind = ErrorKind.CONFLICT


class AlreadyLive(FlowError):
    """Publishing the live text again, or rolling back to the live version: nothing would change."""

    code = "already_live"
    kind = ErrorKind.CONFLICT


class TextAlreadyLive(AlreadyLive):
    """The text published is the live version's text already."""

    code = "text_already_live"


def version_diff(a: FlowVersion, b: FlowVersion) -> str:
    """A unified diff from version a to version b."""
    lines = difflib.unified_diff(
        a.text.splitlines(keepends=True),
        b.text.splitlines(keepends=True),
        fromfile=f"version {a.number}",
        tofile=f"version {b.number}",
    )
    return "".join(lines)


def as_utc(moment: datetime) -> datetime:
    """SQLite (and JSON written from it) gives timestamps without their offset; they are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _version(row: FlowVersionRow) -> FlowVersion:
    return FlowVersion(
        flow=row.flow,
        number=row.number,
        digest=row.digest,
        text=row.text,
        author=row.author,
        created_at=as_utc(row.created_at),
        comment=row.comment,
    )


def _numbered(session: Session, flow: str, number: int) -> FlowVersionRow:
    row = session.exec(
        select(FlowVersionRow).where(FlowVersionRow.flow == flow, FlowVersionRow.number == number)
    ).first()
    if row is None:
        raise UnknownVersion(f"flow {flow!r} has no version {number}", version=number)
    return row


class SqlFlowVersions:
    """The flow versions in SQLite or PostgreSQL. Synchronous: callers run it in a thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def live_pointer(self, flow: str) -> LivePointer | None:
        with Session(self._engine) as session:
            row = session.exec(
                select(FlowLiveRow.generation, FlowLiveRow.number, FlowVersionRow.digest)
                .join(FlowVersionRow, col(FlowLiveRow.flow) == col(FlowVersionRow.flow))
                .where(FlowLiveRow.flow == flow, FlowVersionRow.number == FlowLiveRow.number)
            ).first()
            return LivePointer(*row) if row else None

    def flows(self) -> list[str]:
        """The flows that have a live version."""
        with Session(self._engine) as session:
            return list(session.exec(select(FlowLiveRow.flow).order_by(FlowLiveRow.flow)).all())

    def live(self, flow: str) -> FlowVersion | None:
        with Session(self._engine) as session:
            row = session.exec(
                select(FlowVersionRow)
                .join(FlowLiveRow, col(FlowLiveRow.flow) == col(FlowVersionRow.flow))
                .where(FlowLiveRow.flow == flow, FlowVersionRow.number == FlowLiveRow.number)
            ).first()
            return _version(row) if row else None

    def get(self, flow: str, number: int) -> FlowVersion:
        with Session(self._engine) as session:
            return _version(_numbered(session, flow, number))

    def by_digest(self, flow: str, digest: str) -> FlowVersion | None:
        with Session(self._engine) as session:
            row = session.exec(
                select(FlowVersionRow)
                .where(FlowVersionRow.flow == flow, FlowVersionRow.digest == digest)
                .order_by(col(FlowVersionRow.number).desc())
            ).first()
            return _version(row) if row else None

    def history(self, flow: str) -> list[FlowVersion]:
        """Every version, newest first."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(FlowVersionRow)
                .where(FlowVersionRow.flow == flow)
                .order_by(col(FlowVersionRow.number).desc())
            ).all()
            return [_version(row) for row in rows]

    def audit(self, flow: str) -> list[AuditEntry]:
        """Every publish and rollback, newest first."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(FlowAuditRow)
                .where(FlowAuditRow.flow == flow)
                .order_by(col(FlowAuditRow.id).desc())
            ).all()
            return [
                AuditEntry(
                    flow=row.flow,
                    at=as_utc(row.at),
                    actor=row.actor,
                    action=AuditAction(row.action),
                    from_number=row.from_number,
                    to_number=row.to_number,
                    comment=row.comment,
                )
                for row in rows
            ]

    def publish(
        self, flow: str, text: str, *, author: str, comment: str, at: datetime
    ) -> FlowVersion:
        """Store `text` as the next version and make it live, with its audit row."""
        for _ in range(CONCURRENT_TRIES):  # two changes at once: the loser tries again
            try:
                return self._publish_once(flow, text, author=author, comment=comment, at=at)
            except (IntegrityError, ConcurrentChange):
                time.sleep(random.uniform(0.005, 0.05))  # let the other change finish
        raise RuntimeError("could not publish: too many changes at the same moment")

    def _publish_once(
        self, flow: str, text: str, *, author: str, comment: str, at: datetime
    ) -> FlowVersion:
        digest = flow_digest(text)
        with Session(self._engine) as session:
            live = session.get(FlowLiveRow, flow, with_for_update=True)
            if live is not None and _numbered(session, flow, live.number).digest == digest:
                raise TextAlreadyLive(
                    f"version {live.number} of {flow!r} is this text already", version=live.number
                )
            highest = session.exec(
                select(func.max(FlowVersionRow.number)).where(FlowVersionRow.flow == flow)
            ).one()
            row = FlowVersionRow(
                flow=flow,
                number=(highest or 0) + 1,
                digest=digest,
                text=text,
                author=author,
                created_at=at,
                comment=comment,
            )
            previous = live.number if live else None
            session.add(row)
            session.flush()  # the unique (flow, number) refuses a concurrent twin here
            self._make_live(session, flow, row.number, live, at)
            session.add(
                FlowAuditRow(
                    flow=flow,
                    at=at,
                    actor=author,
                    action=AuditAction.PUBLISH,
                    from_number=previous,
                    to_number=row.number,
                    comment=comment,
                )
            )
            version = _version(row)
            session.commit()
            return version

    def rollback(
        self, flow: str, number: int, *, actor: str, comment: str, at: datetime
    ) -> FlowVersion:
        """Make an earlier version live again (the history keeps every version)."""
        for _ in range(CONCURRENT_TRIES):
            try:
                return self._rollback_once(flow, number, actor=actor, comment=comment, at=at)
            except (IntegrityError, ConcurrentChange):
                time.sleep(random.uniform(0.005, 0.05))
        raise RuntimeError("could not roll back: too many changes at the same moment")

    def _rollback_once(
        self, flow: str, number: int, *, actor: str, comment: str, at: datetime
    ) -> FlowVersion:
        with Session(self._engine) as session:
            row = _numbered(session, flow, number)
            live = session.get(FlowLiveRow, flow, with_for_update=True)
            if live is not None and live.number == number:
                raise AlreadyLive(f"version {number} of {flow!r} is live already", version=number)
            previous = live.number if live else None
            self._make_live(session, flow, number, live, at)
            session.add(
                FlowAuditRow(
                    flow=flow,
                    at=at,
                    actor=actor,
                    action=AuditAction.ROLLBACK,
                    from_number=previous,
                    to_number=number,
                    comment=comment,
                )
            )
            version = _version(row)
            session.commit()
            return version

    @staticmethod
    def _make_live(
        session: Session, flow: str, number: int, live: FlowLiveRow | None, at: datetime
    ) -> None:
        """Point at `number`, only if the pointer is still what we read (no lock held between
        the read and this write, on SQLite or PostgreSQL): else ConcurrentChange."""
        if live is None:
            session.add(FlowLiveRow(flow=flow, number=number, since=at, generation=1))
            session.flush()  # a concurrent first publish: IntegrityError on the primary key
            return
        seen = live.generation
        changed = session.connection().execute(
            update(FlowLiveRow)
            .where(col(FlowLiveRow.flow) == flow, col(FlowLiveRow.generation) == seen)
            .values(number=number, since=at, generation=seen + 1)
        )
        if changed.rowcount != 1:
            raise ConcurrentChange(f"flow {flow!r} changed meanwhile")
