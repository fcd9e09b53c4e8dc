"""Retention: what is older than the retention period goes, by the app's clock, on SQLite and
PostgreSQL; `kcc records purge` through the installed command; the service's daily purge runs
once a day however many instances there are."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from ivr.records import CallRecord
from ivr.retention import RecordPurger, retention_cutoff
from routing.adviser_history import AdviserStateChange, WrapUp
from routing.clock import FixedClock
from routing.monitor_log import MonitorSessionRecord
from tests.support.servers import clean_env, run_kcc

# KCC_NOW for the command: the app's clock, far from the real date, so only it can decide.
PINNED_NOW = datetime(2031, 3, 15, 12, 0, tzinfo=UTC)


def _add_call_activity(engine: Engine, name: str, at: datetime) -> None:
    """One call's rows of every kind that retention covers, all at `at`."""
    with Session(engine) as session:
        session.add(
            CallRecord(
                call_sid=f"CA{name}",
                started_at=at - timedelta(minutes=5),
                ended_at=at,
                flow="kcc",
                flow_version="v1",
                language="nl",
                product="vog_np",
                verification="none",
                outcome="answered",
                call_status="completed",
            )
        )
        session.add(WrapUp(adviser="ann", call_sid=f"CA{name}", category="status", at=at))
        session.add(AdviserStateChange(adviser="ann", state="on_call", at=at, call_sid=f"CA{name}"))
        session.add(
            MonitorSessionRecord(
                id=f"mon{name}",
                supervisor="sanne",
                call_sid=f"CA{name}",
                adviser="ann",
                product="vog_np",
                mode="listen",
                modes="[]",
                state="ended",
                started_at=at,
            )
        )
        session.commit()


def _call_sids(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(session.exec(select(CallRecord.call_sid)).all())


def _remaining(engine: Engine) -> dict[str, list[str]]:
    """The call each remaining row belongs to, per kind."""
    with Session(engine) as session:
        return {
            "calls": sorted(session.exec(select(CallRecord.call_sid)).all()),
            "wrap_ups": sorted(session.exec(select(WrapUp.call_sid)).all()),
            "states": sorted(
                str(sid) for sid in session.exec(select(col(AdviserStateChange.call_sid))).all()
            ),
            "monitors": sorted(session.exec(select(MonitorSessionRecord.call_sid)).all()),
        }


def _both_sides(engine: Engine, now: datetime, days: int) -> None:
    """A call a minute past the boundary (goes) and one a minute within it (stays)."""
    boundary = now - timedelta(days=days)
    _add_call_activity(engine, "old", boundary - timedelta(minutes=1))
    _add_call_activity(engine, "new", boundary + timedelta(minutes=1))


def test_purge_deletes_every_kind_older_than_the_cutoff_and_keeps_the_rest(
    db_engine: Engine,
) -> None:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    _both_sides(db_engine, now, 400)
    counts = RecordPurger(db_engine).purge_before(retention_cutoff(now, 400))
    assert (counts.call_records, counts.wrap_ups, counts.state_changes) == (1, 1, 1)
    assert counts.monitor_sessions == 1
    assert _remaining(db_engine) == {kind: ["CAnew"] for kind in _remaining(db_engine)}


def test_cutoff_follows_a_clock_given_in_another_offset() -> None:
    # The boundary is the same instant, written in UTC, whatever offset the clock speaks.
    amsterdam = datetime.fromisoformat("2026-12-01T10:00+01:00")
    assert retention_cutoff(amsterdam, 1) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        retention_cutoff(amsterdam, 0)


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_records_purge_command_counts_what_it_deleted_by_kcc_now(db_engine: Engine) -> None:
    _both_sides(db_engine, PINNED_NOW, 30)
    # Rows from the real present are far in the pinned clock's past: gone too.
    _add_call_activity(db_engine, "today", datetime.now(UTC))
    done = run_kcc(
        "records",
        "purge",
        "--older-than-days",
        "30",
        env=clean_env(KCC_DATABASE_URL=_url(db_engine), KCC_NOW=PINNED_NOW.isoformat()),
    )
    assert done.returncode == 0, done.stderr
    assert "deleted what is older than 2031-02-13T12:00:00+00:00" in done.stdout
    for line in ("call records:      2", "wrap-up notes:     2", "state changes:     2"):
        assert line in done.stdout
    assert "monitor sessions:  2" in done.stdout
    assert _call_sids(db_engine) == ["CAnew"]


@pytest.mark.parametrize("days", ["0", "-3"])
def test_records_purge_refuses_less_than_a_day_with_exit_2(
    days: str, sqlite_engine: Engine
) -> None:
    _add_call_activity(sqlite_engine, "old", datetime(2020, 1, 1, tzinfo=UTC))
    done = run_kcc(
        "records",
        "purge",
        "--older-than-days",
        days,
        env=clean_env(KCC_DATABASE_URL=_url(sqlite_engine)),
    )
    assert done.returncode == 2
    assert "--older-than-days" in done.stderr
    assert _call_sids(sqlite_engine) == ["CAold"]


async def test_daily_purge_runs_once_a_day_over_two_instances(
    make_app: Callable[..., FastAPI], clock: FixedClock
) -> None:
    first, second = make_app(record_retention_days=30), make_app(record_retention_days=30)
    engine = first.state.services.db_engine
    now = clock.now()
    _both_sides(engine, now, 30)

    done = await asyncio.gather(
        first.state.services.retention.run_if_due(), second.state.services.retention.run_if_due()
    )
    ran = [counts for counts in done if counts is not None]
    assert len(ran) == 1 and ran[0].call_records == 1
    assert _call_sids(engine) == ["CAnew"]

    # Later the same day nothing runs, even with a row that has aged past the boundary since.
    clock.set(now + timedelta(hours=3))
    assert await first.state.services.retention.run_if_due() is None
    assert await second.state.services.retention.run_if_due() is None
    assert _call_sids(engine) == ["CAnew"]

    # The next day one instance runs again, and the call that has aged out goes.
    clock.set(now + timedelta(days=1))
    done = await asyncio.gather(
        second.state.services.retention.run_if_due(), first.state.services.retention.run_if_due()
    )
    assert sum(counts is not None for counts in done) == 1
    assert _call_sids(engine) == []


def test_a_retention_under_a_day_is_refused_at_start(make_app: Callable[..., FastAPI]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="record_retention_days"):
        make_app(record_retention_days=0)
