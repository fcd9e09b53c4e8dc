"""pending_callbacks and identity_lockouts: what only Redis knew, kept for a Redis loss

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Two new tables (routing/callbacks.py, ivr/identity/lockouts.py): the callbacks asked and not yet
made (the queue entry sealed with the app's key), and the identity lock-outs by keyed hash of
the application number. Databases upgraded to it start with neither: what Redis holds at the
upgrade is kept there as before, and the next callback or lock-out is written here too.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "identity_lockouts",
        sa.Column("number_key", sa.String(length=64), nullable=False),
        sa.Column("locked_until", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("number_key"),
    )
    op.create_index("ix_identity_lockouts_locked_until", "identity_lockouts", ["locked_until"])
    op.create_table(
        "pending_callbacks",
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("queued_at", TIMESTAMP, nullable=False),
        sa.Column("entry", sa.Text(), nullable=True),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("settled_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("call_sid"),
    )
    op.create_index("ix_pending_callbacks_expires_at", "pending_callbacks", ["expires_at"])


def downgrade() -> None:
    op.drop_table("pending_callbacks")  # its indexes go with it
    op.drop_table("identity_lockouts")
