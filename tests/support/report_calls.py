"""A fixed set of call records for the reports' tests, with the figures worked out by hand (the
docstring of tests/test_reports.py walks through them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session

from ivr.records import CallRecord

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NOVEMBER = ("2026-11-01", "2026-11-30")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMSTERDAM).astimezone(UTC)


def call(
    sid: str,
    at: str,
    product: str | None,
    theme: str | None = None,
    *,
    wait: float | None = None,
    answered: bool = False,
    talk: int | None = None,
    wrap_up: int | None = None,
    **fields: Any,
) -> CallRecord:
    started = local(at)
    queued = started + timedelta(seconds=40) if wait is not None else None
    values: dict[str, Any] = {
        "call_sid": f"CA{sid}",
        "started_at": started,
        "ended_at": started + timedelta(minutes=10),
        "flow": "kcc",
        "flow_version": "0123456789abcdef",
        "language": "nl",
        "product": product,
        "theme": theme,
        "path": ["main_menu=1"],
        "verification": "unverified",
        "outcome": "answered" if answered else "ended_by_flow",
        "call_status": "completed",
        "queued_at": queued,
        "wait_seconds": wait,
        "answered_at": queued + timedelta(seconds=wait) if answered and queued and wait else None,
        "talk_seconds": talk,
        "wrap_up_seconds": wrap_up,
    }
    values.update(fields)
    return CallRecord(**values)


CALLS = [
    call("J", "2026-11-01 00:20", "gva", wait=5, answered=True, talk=60, wrap_up=0,
         adviser="bram", survey_score=10),
    call("A", "2026-11-02 09:10", "vog_np", "status", wait=10, answered=True, talk=300,
         wrap_up=60, adviser="ahmed", wrap_up_code="informed", survey_score=9),
    call("B", "2026-11-02 09:40", "vog_np", "procedure", wait=45, answered=True, talk=200,
         wrap_up=40, adviser="bram", wrap_up_code="informed", transfer_mode="cold",
         transfer_target="department:wwm", survey_score=6),
    call("C", "2026-11-02 10:05", "vog_np", "status", self_service=True),
    call("D", "2026-11-03 14:20", "vog_rp", wait=70, abandoned=True,
         outcome="abandoned_in_queue"),
    call("E", "2026-11-03 14:50", "vog_rp", wait=20, abandoned=True, callback_requested=True,
         outcome="callback"),
    call("G", "2026-11-07 11:00", "vog_np", "status", wait=30, answered=True, talk=100,
         adviser="ahmed", wrap_up_code="status_given"),
    call("F", "2026-11-08 23:30", None, outcome="abandoned_in_menu"),
    call("H", "2026-10-31 23:30", "vog_np", "status", wait=1, answered=True, talk=10),
    call("I", "2026-12-01 00:10", "vog_np", "status", wait=1, answered=True, talk=10),
]  # fmt: skip

TOTAL = {
    "calls": 8, "offered": 6, "answered": 4, "answered_in_sl": 3, "abandoned": 2,
    "service_level": 0.5, "asa_seconds": 22.5, "aht_seconds": 190.0, "abandon_rate": 0.3333,
    "self_service": 1, "ended_in_menu": 1, "callbacks": 1, "transfers": 1,
    "survey_responses": 3, "survey_average": 8.33,
}  # fmt: skip


def add_calls(engine: Engine, calls: list[CallRecord]) -> None:
    with Session(engine) as session:
        session.add_all([CallRecord.model_validate(c.model_dump()) for c in calls])
        session.commit()
