"""call_transfers: each transfer of a call (to whom, cold or warm, answered or not, when)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

A table rather than columns of call_records: a call can be transferred more than once (to a
colleague who passes it on to a department), and a transfer is written when it ends, while the
call may go on long after. Calls recorded before this revision had no transfers: no rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "call_transfers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("adviser", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("ended_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_call_transfers_call_sid", "call_transfers", ["call_sid"])
    op.create_index("ix_call_transfers_adviser", "call_transfers", ["adviser"])
    op.create_index("ix_call_transfers_started_at", "call_transfers", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_call_transfers_started_at", "call_transfers")
    op.drop_index("ix_call_transfers_adviser", "call_transfers")
    op.drop_index("ix_call_transfers_call_sid", "call_transfers")
    op.drop_table("call_transfers")
