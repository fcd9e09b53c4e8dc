"""monitor_sessions: the audit log of supervisors listening, whispering and barging in

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

A new table: databases upgraded to it have no monitor sessions yet.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitor_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("supervisor", sa.String(length=64), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("adviser", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("modes", sa.String(length=2000), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("answered_at", TIMESTAMP, nullable=True),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("seconds", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_monitor_sessions_supervisor", "monitor_sessions", ["supervisor"])
    op.create_index("ix_monitor_sessions_call_sid", "monitor_sessions", ["call_sid"])
    op.create_index("ix_monitor_sessions_started_at", "monitor_sessions", ["started_at"])


def downgrade() -> None:
    op.drop_table("monitor_sessions")  # its indexes go with it
