"""The audit log of supervisors' monitoring: one row per monitor session (who, which call,
every mode with when it began, started, answered, ended, how long), in SQL for reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import DateTime, Field, Session, SQLModel, col, select

from routing.monitoring import MonitorSession


class MonitorSessionRecord(SQLModel, table=True):
    __tablename__ = "monitor_sessions"

    id: str = Field(primary_key=True, max_length=32)  # the session's id
    supervisor: str = Field(index=True, max_length=64)
    call_sid: str = Field(index=True, max_length=64)
    adviser: str = Field(max_length=64)
    product: str = Field(max_length=64)
    mode: str = Field(max_length=16)  # the last mode
    modes: str = Field(max_length=2000)  # JSON: [{"mode": ..., "at": ISO time}, ...]
    state: str = Field(max_length=16)  # ringing, active, ended, failed
    reason: str | None = Field(default=None, max_length=32)  # why it ended
    started_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    answered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    ended_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    seconds: int | None = None  # time in the conference: answered to ended


def _at(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def record_of(session: MonitorSession) -> MonitorSessionRecord:
    listened = (
        round((session.ended_ms - session.answered_ms) / 1000)
        if session.ended_ms is not None and session.answered_ms is not None
        else None
    )
    modes = [
        {"mode": mode.value, "at": datetime.fromtimestamp(at_ms / 1000, UTC).isoformat()}
        for mode, at_ms in session.modes
    ]
    started = _at(session.started_ms)
    assert started is not None
    return MonitorSessionRecord(
        id=session.id,
        supervisor=session.supervisor,
        call_sid=session.call_sid,
        adviser=session.adviser,
        product=session.product,
        mode=session.mode.value,
        modes=json.dumps(modes),
        state=session.state.value,
        reason=session.reason.value if session.reason else None,
        started_at=started,
        answered_at=_at(session.answered_ms),
        ended_at=_at(session.ended_ms),
        seconds=max(0, listened) if listened is not None else None,
    )


class SqlMonitorLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(self, session: MonitorSession) -> None:
        """Write the session's row as it stands now (a later change replaces it)."""
        with Session(self._engine) as db:
            db.merge(record_of(session))
            db.commit()

    def between(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[MonitorSessionRecord]:
        """Sessions started in [start, end), oldest first."""
        query = select(MonitorSessionRecord)
        if start is not None:
            query = query.where(col(MonitorSessionRecord.started_at) >= start)
        if end is not None:
            query = query.where(col(MonitorSessionRecord.started_at) < end)
        with Session(self._engine) as db:
            return list(db.exec(query.order_by(col(MonitorSessionRecord.started_at))).all())
