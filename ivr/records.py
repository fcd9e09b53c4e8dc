"""One row per finished call, for reports. Holds what reports need and nothing personal:
no caller number, no application number, no date of birth."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine
from sqlmodel import JSON, Column, Field, Session, SQLModel, select


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
    outcome: str  # abandoned_in_menu, ended_by_flow, abandoned_in_queue, answered, ...
    self_service: bool = False  # heard their application's status and needed no adviser
    call_status: str  # Twilio's final CallStatus
    queued_at: datetime | None = None


class CallRecorder(Protocol):
    def record(self, record: CallRecord) -> None: ...


class SqlCallRecorder:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, record: CallRecord) -> None:
        with Session(self._engine) as session:
            query = select(CallRecord).where(CallRecord.call_sid == record.call_sid)
            exists = session.exec(query).first()
            if exists is None:  # a repeated status callback records nothing new
                session.add(record)
                session.commit()
