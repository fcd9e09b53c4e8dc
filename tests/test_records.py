"""Call records: one row per call, whatever repeats (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session, select

from ivr.records import CallRecord, CallRecordBase, RecordChange, SqlCallRecorder, outbox_item

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def record(call_sid: str, outcome: str = "answered") -> CallRecord:
    return CallRecord(
        call_sid=call_sid,
        started_at=AT,
        ended_at=AT,
        flow="kcc",
        flow_version="0123456789abcdef",
        language="nl",
        product="vog_np",
        theme="status",
        path=["main_menu=1"],
        verification="unverified",
        outcome=outcome,
        call_status="completed",
    )


def test_a_call_recorded_again_keeps_its_first_row_and_the_batch_is_not_lost(
    db_engine: Engine,
) -> None:
    recorder = SqlCallRecorder(db_engine)
    recorder.record_many([record("CA1"), record("CA2")])

    # A repeated status callback (or another instance) in the same batch as new calls.
    recorder.record_many([record("CA1", "abandoned_in_queue"), record("CA3"), record("CA3")])

    with Session(db_engine) as session:
        rows = session.exec(select(CallRecord).order_by(CallRecord.call_sid)).all()
    assert [(r.call_sid, r.outcome) for r in rows] == [
        ("CA1", "answered"),
        ("CA2", "answered"),
        ("CA3", "answered"),
    ]
    assert rows[0].path == ["main_menu=1"]


def test_outbox_items_of_this_and_the_earlier_version_are_written_alike(
    db_engine: Engine,
) -> None:
    """An item pushed before an upgrade (json.dumps of the dumped model) is still in Redis
    when the new version drains the outbox: it must give the same row and change."""
    base = record("CA9").model_dump(exclude={"id"})
    recorder = SqlCallRecorder(db_engine)
    earlier = json.dumps({"record": record("CA8").model_dump(mode="json", exclude={"id"})})
    mark = RecordChange(call_sid="CA8", noted_at=AT, survey_score=7)
    earlier_change = json.dumps({"change": mark.model_dump(mode="json")})

    assert recorder.apply([earlier, earlier_change]) == []
    assert recorder.apply([outbox_item(CallRecordBase(**{**base, "call_sid": "CA9"}))]) == []
    assert recorder.apply([outbox_item(mark.model_copy(update={"call_sid": "CA9"}))]) == []

    with Session(db_engine) as session:
        rows = session.exec(select(CallRecord).order_by(CallRecord.call_sid)).all()
    assert [(r.call_sid, r.survey_score) for r in rows] == [("CA8", 7), ("CA9", 7)]
    fields = [name for name in CallRecordBase.model_fields if name not in ("id", "call_sid")]
    assert [getattr(rows[0], f) for f in fields] == [getattr(rows[1], f) for f in fields]
    assert rows[1].started_at.replace(tzinfo=UTC) == AT and rows[1].path == ["main_menu=1"]
