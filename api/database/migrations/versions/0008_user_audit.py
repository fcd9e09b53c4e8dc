"""user_audit: the log of changes to staff accounts (added, changed, password reset,
deactivated, reactivated), by whom and when

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

A new, empty table; the accounts themselves are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("details", sa.String(length=4000), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_user_audit_at", "user_audit", ["at"])
    op.create_index("ix_user_audit_subject", "user_audit", ["subject"])


def downgrade() -> None:
    op.drop_table("user_audit")  # its indexes go with it
