"""One row per finished call, for reports. Holds what reports need and nothing personal:
no caller number, no application number, no date of birth."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Engine, Executable
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import JSON, Column, Field, SQLModel


class CallOutcome(StrEnum):
    """How a call ended, as reports count it."""

    ABANDONED_IN_MENU = "abandoned_in_menu"  # hung up before reaching a queue
    ENDED_BY_FLOW = "ended_by_flow"  # the flow said goodbye (closed, self-service, ...)
    ABANDONED_IN_QUEUE = "abandoned_in_queue"  # hung up while waiting for an adviser
    LEFT_QUEUE = "left_queue"  # queued, then gone without an adviser and without waiting
    ANSWERED = "answered"  # talked to an adviser
    CALLBACK = "callback"  # hung up to be called back, keeping the place in line


class CallRecord(SQLModel, table=True):
    __tablename__ = "call_records"

    id: int | None = Field(default=None, primary_key=True)
    call_sid: str = Field(index=True, unique=True, max_length=64)
    started_at: datetime
    ended_at: datetime
    flow: str
    flow_version: str = Field(max_length=64)
    language: str = Field(max_length=8)
    product: str | None = Field(default=None, index=True)
    theme: str | None = None
    path: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    verification: str
    outcome: str  # a CallOutcome value
    self_service: bool = False  # heard their application's status and needed no adviser
    call_status: str  # Twilio's final CallStatus
    queued_at: datetime | None = None
    # time the caller was held in the conversation, all holds added up (revision 0002)
    hold_seconds: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class CallRecorder(Protocol):
    def record_many(self, records: list[CallRecord]) -> None: ...


class SqlCallRecorder:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record_many(self, records: list[CallRecord]) -> None:
        """Write new records; a call recorded before (a repeated status callback, or another
        instance at the same moment) is skipped by the database, without losing the batch.

        One multi-row INSERT (SQLAlchemy Core): the ORM's unit of work cost several times the
        database's own time, in the thread that shares the GIL with the webhooks.
        """
        unique = {record.call_sid: record for record in records}
        table = CallRecord.__table__  # type: ignore[attr-defined]
        statement = _insert_new(self._engine.dialect.name, table)
        with self._engine.begin() as connection:
            connection.execute(statement, [_row(record) for record in unique.values()])


_COLUMNS = [name for name in CallRecord.model_fields if name != "id"]


def _insert_new(dialect: str, table: Any) -> Executable:
    """INSERT that skips rows whose call_sid is there already (both databases we run on)."""
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["call_sid"])
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["call_sid"])
    raise RuntimeError(f"call records need SQLite or PostgreSQL, not {dialect}")


def _row(record: CallRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in _COLUMNS}
