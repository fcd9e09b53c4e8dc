"""One row per finished call, for reports. Holds what reports need and nothing personal:
no caller number, no application number, no date of birth."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Engine, Executable
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import JSON, Column, Field, SQLModel

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


RunSync = Callable[[Callable[[], None]], Awaitable[None]]  # runs blocking work in a thread


class BackgroundWriter(Generic[T]):
    """Writes rows in the background, in batches, in submission order, one writer per process.

    A webhook or a routing decision hands its row over and goes on at once: a database write
    (and a SQLite write lock) never sits on the caller's path. The writer gathers rows for
    `linger` seconds before it writes: one write of many rows costs little more than a write of
    one, and the writer's thread shares the interpreter with the webhooks. `flush` writes at once.
    """

    def __init__(
        self,
        write: Callable[[list[T]], None],
        run_sync: RunSync,
        *,
        batch: int = 200,
        linger: float = 0.25,
    ) -> None:
        self._write = write
        self._run_sync = run_sync
        self._batch = batch
        self._linger = linger
        self._pending: list[T] = []
        self._task: asyncio.Task[None] | None = None
        self._hurry = False  # flush wants everything written now
        self._now: asyncio.Event | None = None  # wakes a writer that is gathering rows

    def submit(self, record: T) -> None:
        self._pending.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        """Wait until everything submitted so far is written."""
        while self._task is not None and not self._task.done():
            self._hurry = True
            if self._now is not None:
                self._now.set()
            await self._task

    async def _drain(self) -> None:
        if self._linger > 0 and not self._hurry:
            self._now = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), self._linger)
        while self._pending:
            batch, self._pending = self._pending[: self._batch], self._pending[self._batch :]
            try:
                await self._run_sync(partial(self._write, batch))
            except Exception:  # the database is away: reports lose these rows, callers nothing
                log.exception("could not write report rows", extra={"rows": len(batch)})
        self._now = None
        self._hurry = False
