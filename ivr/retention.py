"""Record retention: call records, wrap-up notes, adviser state changes and monitor sessions
older than a number of days are deleted, on demand (`kcc records purge`) and once a day by the
service itself. Age is measured by the app's clock, so a pinned clock (KCC_NOW) moves it too."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Engine, delete

from ivr.records import CallRecord
from routing import keys
from routing.adviser_history import AdviserStateChange, WrapUp
from routing.clock import Clock
from routing.monitor_log import MonitorSessionRecord

log = logging.getLogger(__name__)

RunSync = Callable[[Callable[[], "PurgeCounts"]], Awaitable["PurgeCounts"]]


@dataclass(frozen=True)
class PurgeCounts:
    """How many rows of each kind a purge deleted."""

    call_records: int
    wrap_ups: int
    state_changes: int
    monitor_sessions: int


def retention_cutoff(now: datetime, days: int) -> datetime:
    """The instant before which rows go: `days` whole days before `now`, in UTC (the
    databases hold UTC; SQLite compares the stored text, so the offset must match)."""
    if days < 1:
        raise ValueError("retention needs at least 1 day")
    return (now - timedelta(days=days)).astimezone(UTC)


class RecordPurger:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def purge_before(self, cutoff: datetime) -> PurgeCounts:
        """Delete every row older than `cutoff`, in one transaction."""
        # A call's age is when it ended (a record is written then); a monitor session's when it
        # started (its end may be missing).
        targets: list[tuple[Any, Any]] = [
            (CallRecord, CallRecord.ended_at),
            (WrapUp, WrapUp.at),
            (AdviserStateChange, AdviserStateChange.at),
            (MonitorSessionRecord, MonitorSessionRecord.started_at),
        ]
        deleted: list[int] = []
        with self._engine.begin() as connection:
            for model, column in targets:
                result = connection.execute(delete(model).where(column < cutoff))
                deleted.append(result.rowcount)
        return PurgeCounts(*deleted)


class DailyPurge:
    """Runs the purge at most once per calendar day (UTC) over all instances: the first
    instance to set the day's marker in Redis does it; the others see the marker and skip."""

    def __init__(
        self,
        *,
        redis: Redis,
        purger: RecordPurger,
        clock: Clock,
        days: int,
        run_sync: RunSync,
    ) -> None:
        retention_cutoff(clock.now(), days)  # refuses a retention under a day at once
        self._redis = redis
        self._purger = purger
        self._clock = clock
        self._days = days
        self._run_sync = run_sync

    async def run_if_due(self) -> PurgeCounts | None:
        """The counts when this instance purged now; None when today's purge was done."""
        now = self._clock.now()
        marker = keys.retention_day(now.astimezone(UTC).date().isoformat())
        if not await self._redis.set(marker, "1", nx=True, ex=keys.RETENTION_MARKER_TTL):
            return None
        cutoff = retention_cutoff(now, self._days)
        try:
            counts = await self._run_sync(lambda: self._purger.purge_before(cutoff))
        except BaseException:
            # The database was away: free the day, so a later check (any instance) tries again.
            await self._redis.delete(marker)
            raise
        log.info(
            "old records purged",
            extra={"older_than_days": self._days, **counts.__dict__},
        )
        return counts
