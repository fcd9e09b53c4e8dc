"""One row per finished call, for reports. Holds what reports need and nothing personal:
no caller number, no application number, no date of birth."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, get_args

from pydantic import BaseModel
from sqlalchemy import Engine, Executable, false, update
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


class CallRecordBase(SQLModel):
    """A call record's fields, in the table's column order. The status callback builds this
    plain model (from the validated session: trusted values) for the outbox: a table model's
    construction and dump go through SQLAlchemy's instrumentation, twice the cost, once a call."""

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


class CallRecord(CallRecordBase, table=True):
    __tablename__ = "call_records"


log = logging.getLogger(__name__)
# A change of a record that never came (its call's record was lost before the outbox existed, or
# belongs to no call we recorded) is given up after this long, so it cannot wait for ever.
ORPHAN_CHANGE_MAX_AGE = timedelta(hours=24)


class RecordChange(BaseModel):
    """What becomes known of a call after its record was made: the adviser's wrap-up, the
    callback made, a survey mark typed after the status callback. Applied to the record with
    this call_sid, whenever it is there; applying it twice changes nothing (the first wrap-up,
    the first callback and the first mark count)."""

    call_sid: str
    noted_at: datetime  # when this became known
    wrap_up_code: str | None = None  # with noted_at: when the wrap-up was saved
    callback_made: bool = False  # noted_at: when the adviser reached the caller
    survey_score: int | None = None  # a survey mark typed after the record was built
    waiting_since: datetime | None = None  # first found no record (real time, not the app's)


class CallRecorder(Protocol):
    def record_many(self, records: list[CallRecord]) -> None: ...


class _NewRecord(BaseModel):
    """The outbox's item of a new record: `{"record": {...}}`, the id left out."""

    record: CallRecordBase


class _Change(BaseModel):
    """The outbox's item of a change: `{"change": {...}}`."""

    change: RecordChange


class _Item(BaseModel):
    """An outbox item as the writer reads it: one of the two, in one pass of pydantic's JSON
    parser (the times of a change parsed there too)."""

    record: dict[str, Any] | None = None  # the row's JSON values; `_row_of_json` turns times
    change: RecordChange | None = None


def outbox_item(change: CallRecordBase | RecordChange) -> str:
    """The outbox's JSON text of a new record or of a change (routing/outbox.py). Written by
    pydantic's serializer at once, not a dict first and then `json.dumps`: once a call."""
    if isinstance(change, CallRecordBase):
        return _NewRecord.model_construct(record=change).model_dump_json(exclude={"record": {"id"}})
    return _Change.model_construct(change=change).model_dump_json()


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

    def apply(self, items: list[str]) -> list[str]:
        """Write the outbox's items (`outbox_item`) in one transaction: new records first, then
        the changes. Answers the changes whose record is not there yet: they wait in the outbox.
        Idempotent: a batch written again (a retry, another instance) ends the same."""
        rows: dict[str, dict[str, object]] = {}  # call_sid -> the record's row
        changes: list[RecordChange] = []
        for item in items:
            data = _Item.model_validate_json(item)
            if data.record is not None:
                row = _row_of_json(data.record)
                rows[str(row["call_sid"])] = row
            elif data.change is not None:
                changes.append(data.change)
        later: list[str] = []
        with self._engine.begin() as connection:
            if rows:
                statement = _insert_new(self._engine.dialect.name, CallRecord.__table__)  # type: ignore[attr-defined]
                connection.execute(statement, list(rows.values()))
            for change in changes:
                if _apply_change(connection, change):
                    continue
                now = datetime.now(UTC)  # real time: how long this change has waited
                waiting_since = change.waiting_since or now
                if now - waiting_since > ORPHAN_CHANGE_MAX_AGE:
                    log.warning(
                        "a record change found no record", extra={"call_sid": change.call_sid}
                    )
                    continue
                later.append(
                    outbox_item(change.model_copy(update={"waiting_since": waiting_since}))
                )
        return later


def _apply_change(connection: Any, change: RecordChange) -> bool:
    """Apply one change to its record; False when the record is not there (yet)."""
    table = CallRecord.__table__  # type: ignore[attr-defined]
    row = (
        connection.execute(table.select().where(table.c.call_sid == change.call_sid))
        .mappings()
        .first()
    )
    if row is None:
        return False
    values: dict[str, object] = {}
    if change.wrap_up_code is not None and row["wrap_up_code"] is None:
        values["wrap_up_code"] = change.wrap_up_code
        values["wrap_up_seconds"] = _wrap_up_seconds(row, change.noted_at)
    if change.callback_made and row["callback_made_at"] is None:
        values["callback_made_at"] = change.noted_at.astimezone(UTC)
    if change.survey_score is not None and row["survey_score"] is None:
        values["survey_score"] = change.survey_score
    if values:
        connection.execute(update(table).where(table.c.call_sid == change.call_sid).values(values))
    return True


def _wrap_up_seconds(row: Any, saved_at: datetime) -> int:
    """Conversation end (answered + talk time, else the call's end) until the wrap-up was saved."""
    answered: datetime | None = row["answered_at"]
    talk: int | None = row["talk_seconds"]
    ended: datetime = (
        answered + timedelta(seconds=talk) if answered and talk is not None else row["ended_at"]
    )
    if ended.tzinfo is None:  # the columns keep no zone; records are written in UTC
        ended = ended.replace(tzinfo=UTC)
    return max(0, round((saved_at - ended).total_seconds()))


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


def _types(annotation: Any) -> tuple[Any, ...]:
    """The types of an annotation: `datetime | None` -> (datetime, NoneType)."""
    return get_args(annotation) or (annotation,)


# The record's times, which JSON holds as ISO-8601 text.
_TIME_COLUMNS = frozenset(
    name for name, field in CallRecord.model_fields.items() if datetime in _types(field.annotation)
)


def _row_of_json(data: dict[str, Any]) -> dict[str, object]:
    """A record's row from the outbox's JSON (`outbox_item`), without building a CallRecord:
    a table model's validation cost several times the insert itself, on every call. The JSON
    was made from a CallRecord, so only its times need turning back into datetimes."""
    row: dict[str, object] = {name: data.get(name) for name in _COLUMNS}
    for name in _TIME_COLUMNS:
        value = row[name]
        if isinstance(value, str):
            row[name] = datetime.fromisoformat(value)
    return row
