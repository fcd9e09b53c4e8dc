"""Every adviser state change, timestamped, for reports of time per state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, Index, func, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import DateTime, Field, Session, SQLModel, col, select

from flows.errors import ErrorKind, KccError
from routing.transfers import CallTransfer

# Not a live state (the adviser stays on_call): the history's mark that the caller was held.
# The row after it (on_call, or wrap_up when the call ended on hold) ends the hold.
HOLD_STATE = "on_hold"


class AdviserStateChange(SQLModel, table=True):
    __tablename__ = "adviser_state_changes"

    id: int | None = Field(default=None, primary_key=True)
    adviser: str = Field(index=True, max_length=64)
    state: str = Field(max_length=16)
    at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    call_sid: str | None = Field(default=None, max_length=64)


class WrapUp(SQLModel, table=True):
    """What the adviser noted after a call: the question's category (for reports) and a note."""

    __tablename__ = "wrap_ups"
    # One wrap-up per adviser and call: the database refuses a second, even at the same moment.
    __table_args__ = (Index("ux_wrap_ups_adviser_call_sid", "adviser", "call_sid", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    adviser: str = Field(index=True, max_length=64)
    call_sid: str = Field(index=True, max_length=64)
    category: str = Field(max_length=64)
    note: str = Field(default="", max_length=2000)
    at: datetime = Field(sa_type=DateTime(timezone=True))


class WrapUpDone(KccError):
    """The adviser wrapped up this call already."""

    code = "wrap_up_done"
    kind = ErrorKind.CONFLICT

    def __init__(self, call_sid: str) -> None:
        super().__init__("this call is wrapped up already", call_sid=call_sid)


class SqlAdviserLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def state_changes(self, changes: list[AdviserStateChange]) -> None:
        # One multi-row INSERT (Core): the ORM's unit of work cost twice the database's time per
        # row, a few rows per call, in a thread that shares the GIL with the webhooks.
        rows = [
            {"adviser": c.adviser, "state": c.state, "at": c.at, "call_sid": c.call_sid}
            for c in changes
        ]
        if rows:
            with self._engine.begin() as connection:
                connection.execute(insert(AdviserStateChange.__table__), rows)  # type: ignore[attr-defined]

    def last_states(self) -> dict[str, AdviserStateChange]:
        """Each adviser's last state change (the highest id: rows are written in order)."""
        last = select(func.max(AdviserStateChange.id)).group_by(AdviserStateChange.adviser)
        with Session(self._engine) as session:
            rows = session.exec(
                select(AdviserStateChange).where(col(AdviserStateChange.id).in_(last))
            ).all()
        return {row.adviser: row for row in rows}

    def transfers(self, records: list[CallTransfer]) -> None:
        with Session(self._engine) as session:
            session.add_all(records)
            session.commit()

    def wrap_up(self, record: WrapUp) -> None:
        """Save the adviser's wrap-up of a call; `WrapUpDone` when they saved one before."""
        with Session(self._engine) as session:
            session.add(record)
            try:
                session.commit()
            except IntegrityError as exc:
                raise WrapUpDone(record.call_sid) from exc
