"""One row per finished call, for reports. Holds what reports need and nothing personal:
no caller number, no application number, no date of birth."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Generic, Protocol, TypeVar

from sqlalchemy import Engine
from sqlmodel import JSON, Column, Field, Session, SQLModel, col, select

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    def record_many(self, records: list[CallRecord]) -> None: ...


class SqlCallRecorder:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record_many(self, records: list[CallRecord]) -> None:
        """Write new records; a call recorded before (a repeated status callback) is skipped."""
        unique = {record.call_sid: record for record in records}
        with Session(self._engine) as session:
            query = select(CallRecord.call_sid).where(col(CallRecord.call_sid).in_(unique))
            for known in session.exec(query).all():
                unique.pop(known, None)
            session.add_all(unique.values())
            session.commit()


RunSync = Callable[[Callable[[], None]], Awaitable[None]]  # runs blocking work in a thread


class BackgroundWriter(Generic[T]):
    """Writes rows in the background, in batches, in submission order, one writer per process.

    A webhook or a routing decision hands its row over and goes on at once: a database write
    (and a SQLite write lock) never sits on the caller's path.
    """

    def __init__(
        self, write: Callable[[list[T]], None], run_sync: RunSync, *, batch: int = 200
    ) -> None:
        self._write = write
        self._run_sync = run_sync
        self._batch = batch
        self._pending: list[T] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, record: T) -> None:
        self._pending.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        """Wait until everything submitted so far is written."""
        while self._task is not None and not self._task.done():
            await self._task

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._batch], self._pending[self._batch :]
            try:
                await self._run_sync(partial(self._write, batch))
            except Exception:  # the database is away: reports lose these rows, callers nothing
                log.exception("could not write report rows", extra={"rows": len(batch)})
