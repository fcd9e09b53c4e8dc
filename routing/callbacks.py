"""Callbacks asked and not yet made, in the database too: a caller who hung up to be called
back is known only by their queue entry in Redis, so a Redis restarted empty would forget them.

When the callback is asked, the entry (sealed as Redis keeps it: AES-GCM with the app's key, so
the caller's number and application number are never in clear at rest; there is never a date of
birth in it) goes to the state outbox in the same script that keeps the caller's place; when the
callback is made, not reached or given up, a "settled" item follows it. The outbox writes both
to `pending_callbacks` soon after (routing/outbox.py), so the webhooks never wait for the
database, and nothing is lost while the database is away. The recovery (routing/recovery.py)
puts the pending ones back in line at their place.

The writes are order-free: an ask never undoes a settle (insert-if-absent), a settle of a row
not there yet leaves a tombstone; so a batch written twice, or out of order by two instances,
ends the same. A settled row keeps no entry (the number goes at once); settled and expired
rows are deleted by the next write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Text, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import DateTime, Field, SQLModel, col

from routing import keys
from routing.database_reads import autocommit_read
from routing.entry import QueueEntry
from routing.outbox import Outbox
from routing.scripts import ScriptStep

ASKED, SETTLED = "callback_asked", "callback_settled"  # the outbox items' kinds
SETTLED_KEPT = timedelta(days=1)  # a tombstone outlives any late ask of the same call


class PendingCallback(SQLModel, table=True):
    __tablename__ = "pending_callbacks"

    call_sid: str = Field(primary_key=True, max_length=64)
    product: str = Field(max_length=64)
    queued_at: datetime = Field(sa_type=DateTime(timezone=True))  # the place in line
    entry: str | None = Field(default=None, sa_type=Text)  # sealed; None once settled
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    settled_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


@dataclass(frozen=True)
class Pending:
    """A callback to put back in line: its sealed entry, as Redis keeps it."""

    call_sid: str
    product: str
    queued_at: datetime
    sealed: str
    expires_at: datetime


class CallbackBook:
    """The Redis side: the outbox steps that go with the queue's own scripts."""

    def __init__(self, outbox: Outbox, now: Callable[[], datetime]) -> None:
        self._outbox = outbox
        self._now = now

    def asked_step(self, entry: QueueEntry, sealed: str) -> ScriptStep[int]:
        expires = self._now() + timedelta(seconds=keys.CALLBACK_TTL)
        item = {
            "kind": ASKED,
            "call_sid": entry.call_sid,
            "product": entry.product,
            "queued_at": entry.queued_at.isoformat(),
            "entry": sealed,
            "expires_at": expires.isoformat(),
        }
        return self._outbox.push_step(json.dumps(item))

    def settled_step(self, call_sid: str) -> ScriptStep[int]:
        item = {"kind": SETTLED, "call_sid": call_sid, "at": self._now().isoformat()}
        return self._outbox.push_step(json.dumps(item))

    def wake(self) -> None:
        """Write soon, without the outbox's linger: a callback is rare and matters."""
        self._outbox.drain_soon()


def _utc(at: datetime) -> datetime:
    # SQLite gives times back without their zone (and compares the stored text): all UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _insert(connection: Connection) -> Any:
    dialect = connection.dialect.name
    table = PendingCallback.__table__  # type: ignore[attr-defined]
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise RuntimeError(f"pending callbacks need SQLite or PostgreSQL, not {dialect}")


def write_callbacks(connection: Connection, items: list[dict[str, Any]], now: datetime) -> None:
    """Apply the outbox's callback items in one transaction (the caller's), then delete what
    is settled (a day on) or expired."""
    for item in items:
        if item["kind"] == ASKED:
            statement = _insert(connection).values(
                call_sid=item["call_sid"],
                product=item["product"],
                queued_at=_utc(datetime.fromisoformat(item["queued_at"])),
                entry=item["entry"],
                expires_at=_utc(datetime.fromisoformat(item["expires_at"])),
            )
            connection.execute(statement.on_conflict_do_nothing(index_elements=["call_sid"]))
        else:  # settled: the entry goes; a row that is not there yet becomes a tombstone
            at = _utc(datetime.fromisoformat(item["at"]))
            statement = _insert(connection).values(
                call_sid=item["call_sid"],
                product="",
                queued_at=at,
                expires_at=at + SETTLED_KEPT,  # outlives a late ask, then goes
                settled_at=at,
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["call_sid"], set_={"entry": None, "settled_at": at}
                )
            )
    now = _utc(now)
    connection.execute(
        delete(PendingCallback).where(
            or_(
                col(PendingCallback.expires_at) < now,
                col(PendingCallback.settled_at) < now - SETTLED_KEPT,
            )
        )
    )


def pending_callbacks(engine: Engine, now: datetime) -> list[Pending]:
    """The callbacks still to be made, in their order in line (queued_at, oldest first)."""
    query = (
        select(PendingCallback)
        .where(
            col(PendingCallback.settled_at).is_(None),
            col(PendingCallback.expires_at) > _utc(now),
        )
        .order_by(col(PendingCallback.queued_at), col(PendingCallback.call_sid))
    )
    rows = autocommit_read(engine, lambda connection: connection.execute(query).mappings().all())
    return [
        Pending(
            call_sid=row["call_sid"],
            product=row["product"],
            queued_at=_utc(row["queued_at"]),
            sealed=row["entry"],
            expires_at=_utc(row["expires_at"]),
        )
        for row in rows
        if row["entry"]
    ]
