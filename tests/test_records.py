"""Call records: one row per call, whatever repeats (SQLite and the real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session, select

from ivr.records import CallRecord, SqlCallRecorder

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
