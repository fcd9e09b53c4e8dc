"""One row per finished call, for reports. Holds what reports need and nothing personal:
no caller number, no application number, no date of birth."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Engine, Executable, false
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


class HungUpBy(StrEnum):
    """Who ended the call."""

    CALLER = "caller"
    ADVISER = "adviser"  # the adviser ended the conversation (or transferred the caller away)
    SYSTEM = "system"  # the flow said goodbye, the queue timed out, or Twilio ended it


class TransferMode(StrEnum):
    COLD = "cold"
    WARM = "warm"


class CallRecord(SQLModel, table=True):
    __tablename__ = "call_records"

    id: int | None = Field(default=None, primary_key=True)
    call_sid: str = Field(index=True, unique=True, max_length=64)
    started_at: datetime = Field(index=True)  # reports read a period by it (revision 0007)
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
    # Revision 0006: everything a report needs on the record itself, no joins to reconstruct it.
    answered_at: datetime | None = None  # put through to an adviser
    adviser: str | None = Field(default=None, index=True, max_length=64)  # who answered
    wait_seconds: float | None = None  # queued_at until answered, or until the caller left
    talk_seconds: int | None = None  # answered_at until the conversation ended
    wrap_up_seconds: int | None = None  # conversation end until the wrap-up was saved
    wrap_up_code: str | None = Field(default=None, max_length=64)
    hung_up_by: str | None = Field(default=None, max_length=16)  # a HungUpBy value
    # left an adviser queue without an adviser (hang-up, left_queue, timeout): once per call
    abandoned: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    callback_requested: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    callback_made_at: datetime | None = None
    transfer_mode: str | None = Field(default=None, max_length=8)  # a TransferMode value
    transfer_target: str | None = Field(default=None, max_length=128)  # "department:wwm", ...
    survey_score: int | None = None  # the caller's mark, 1-10, when they answered the survey


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
