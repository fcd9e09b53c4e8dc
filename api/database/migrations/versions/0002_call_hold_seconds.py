"""call_records.hold_seconds: the time the caller was held in the conversation

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

Calls recorded before this revision were never held (there was no hold): they get 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_records") as table:
        table.add_column(
            sa.Column("hold_seconds", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("call_records") as table:
        table.drop_column("hold_seconds")
