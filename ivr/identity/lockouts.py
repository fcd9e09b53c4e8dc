"""Identity lock-outs in the database too: a Redis restarted empty must not unlock a number a
guesser has locked (fresh tries for them).

One row per locked application number, named by its keyed hash (the Pseudonymizer, as the Redis
key is: never the number, never a date of birth), with the end of the lock. Written through the
state outbox when the lock is set (routing/outbox.py: the webhook does not wait for the
database); read only when Redis has lost its state: the recovery puts every unexpired lock back
into Redis, and until it has run the verifier asks the database about the number being tried
(ivr/identity/verifier.py). Expired rows are deleted by the next write.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import DateTime, Field, SQLModel, col

from routing.database_reads import autocommit_read

LOCKOUT = "lockout"  # the outbox item's kind


class IdentityLockout(SQLModel, table=True):
    __tablename__ = "identity_lockouts"

    number_key: str = Field(primary_key=True, max_length=64)  # keyed hash of the number
    locked_until: datetime = Field(sa_type=DateTime(timezone=True), index=True)


def lockout_item(number_key: str, until_ms: int) -> str:
    """The state outbox's JSON text of a lock set until `until_ms`."""
    until = datetime.fromtimestamp(until_ms / 1000, UTC)
    return json.dumps({"kind": LOCKOUT, "number_key": number_key, "until": until.isoformat()})


def _utc(at: datetime) -> datetime:
    # SQLite gives times back without their zone (and compares the stored text): all UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def write_lockouts(connection: Connection, items: list[dict[str, Any]], now: datetime) -> None:
    """Apply the outbox's lock-outs (the later end wins), then delete the expired ones."""
    table = IdentityLockout.__table__  # type: ignore[attr-defined]
    dialects: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
    insert_into = dialects.get(connection.dialect.name)
    if insert_into is None:
        raise RuntimeError(f"lock-outs need SQLite or PostgreSQL, not {connection.dialect.name}")
    for item in items:
        until = _utc(datetime.fromisoformat(item["until"]))
        insert = insert_into(table).values(number_key=item["number_key"], locked_until=until)
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=["number_key"],
                set_={"locked_until": until},
                where=table.c.locked_until < insert.excluded.locked_until,  # the later end wins
            )
        )
    connection.execute(
        delete(IdentityLockout).where(col(IdentityLockout.locked_until) <= _utc(now))
    )


def unexpired_lockouts(engine: Engine, now: datetime) -> list[tuple[str, int]]:
    """Every lock still running: (keyed hash, end in ms)."""
    query = select(IdentityLockout).where(col(IdentityLockout.locked_until) > _utc(now))
    rows = autocommit_read(engine, lambda connection: connection.execute(query).mappings().all())
    return [(row["number_key"], _ms(row["locked_until"])) for row in rows]


def lockout_of(engine: Engine, number_key: str, now: datetime) -> int | None:
    """The end (ms) of this number's lock, if one runs."""
    query = select(IdentityLockout.locked_until).where(  # type: ignore[call-overload]
        col(IdentityLockout.number_key) == number_key,
        col(IdentityLockout.locked_until) > _utc(now),
    )
    until = autocommit_read(engine, lambda connection: connection.execute(query).scalar())
    return None if until is None else _ms(until)


def _ms(at: datetime) -> int:
    return int(_utc(at).timestamp() * 1000)
