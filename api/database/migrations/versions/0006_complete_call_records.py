"""call_records: answer time, adviser, wait/talk/wrap-up time, who hung up, abandoned, callback,
transfer and survey score on the record itself

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Reports read one row per call and join nothing. Calls recorded before this revision keep their
rows: the new columns are empty (NULL) or false, and `abandoned` is set from the outcome, which
already told a caller who left the queue without an adviser (abandoned_in_queue, left_queue).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)

_NEW_COLUMNS = (
    "answered_at",
    "adviser",
    "wait_seconds",
    "talk_seconds",
    "wrap_up_seconds",
    "wrap_up_code",
    "hung_up_by",
    "abandoned",
    "callback_requested",
    "callback_made_at",
    "transfer_mode",
    "transfer_target",
    "survey_score",
)


def upgrade() -> None:
    with op.batch_alter_table("call_records") as table:
        table.add_column(sa.Column("answered_at", TIMESTAMP, nullable=True))
        table.add_column(sa.Column("adviser", sa.String(length=64), nullable=True))
        table.add_column(sa.Column("wait_seconds", sa.Float(), nullable=True))
        table.add_column(sa.Column("talk_seconds", sa.Integer(), nullable=True))
        table.add_column(sa.Column("wrap_up_seconds", sa.Integer(), nullable=True))
        table.add_column(sa.Column("wrap_up_code", sa.String(length=64), nullable=True))
        table.add_column(sa.Column("hung_up_by", sa.String(length=16), nullable=True))
        table.add_column(
            sa.Column("abandoned", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        table.add_column(
            sa.Column("callback_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        table.add_column(sa.Column("callback_made_at", TIMESTAMP, nullable=True))
        table.add_column(sa.Column("transfer_mode", sa.String(length=8), nullable=True))
        table.add_column(sa.Column("transfer_target", sa.String(length=128), nullable=True))
        table.add_column(sa.Column("survey_score", sa.Integer(), nullable=True))
        table.create_index("ix_call_records_adviser", ["adviser"])
    records = sa.table(
        "call_records",
        sa.column("outcome", sa.String()),
        sa.column("abandoned", sa.Boolean()),
        sa.column("callback_requested", sa.Boolean()),
    )
    op.execute(
        records.update()
        .where(records.c.outcome.in_(["abandoned_in_queue", "left_queue"]))
        .values(abandoned=True)
    )
    op.execute(
        records.update().where(records.c.outcome == "callback").values(callback_requested=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("call_records") as table:
        table.drop_index("ix_call_records_adviser")
        for name in reversed(_NEW_COLUMNS):
            table.drop_column(name)
