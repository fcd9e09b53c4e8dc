"""The eight tables, as create_all made them before there were migrations

Revision ID: 0001
Revises:
Create Date: 2026-12-05

A database made by the release before migrations (these tables, no alembic_version) is
recognised and marked as this revision instead of running it (api/database/schema.py). Never
edit a revision that has shipped: change the schema in a new one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Timestamps are stored with their zone on PostgreSQL (SQLite keeps them naive, still UTC).
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "user",
        sa.Column("name", sa.String(length=64), nullable=False),
        # Roles and statuses are plain values in a VARCHAR, never a PostgreSQL ENUM type.
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("skills", sa.String(length=512), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_user_name", "user", ["name"], unique=True)

    op.create_table(
        "flow_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("comment", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("flow", "number"),
    )
    op.create_index("ix_flow_versions_flow", "flow_versions", ["flow"])
    op.create_index("ix_flow_versions_digest", "flow_versions", ["digest"])

    op.create_table(
        "flow_live",
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("since", TIMESTAMP, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("flow"),
    )

    op.create_table(
        "flow_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_number", sa.Integer(), nullable=True),
        sa.Column("to_number", sa.Integer(), nullable=False),
        sa.Column("comment", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_flow_audit_flow", "flow_audit", ["flow"])

    op.create_table(
        "call_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("ended_at", TIMESTAMP, nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("flow_version", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("product", sa.String(), nullable=True),
        sa.Column("theme", sa.String(), nullable=True),
        sa.Column("path", sa.JSON(), nullable=True),
        sa.Column("verification", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("self_service", sa.Boolean(), nullable=False),
        sa.Column("call_status", sa.String(), nullable=False),
        sa.Column("queued_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_call_records_call_sid", "call_records", ["call_sid"], unique=True)
    op.create_index("ix_call_records_product", "call_records", ["product"])

    op.create_table(
        "applications",
        sa.Column("application_number", sa.String(length=20), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_date", sa.Date(), nullable=False),
        sa.Column("dob_hmac", sa.String(length=64), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("application_number"),
    )
    op.create_index("ix_applications_product", "applications", ["product"])

    op.create_table(
        "adviser_state_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("adviser", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_adviser_state_changes_adviser", "adviser_state_changes", ["adviser"])
    op.create_index("ix_adviser_state_changes_at", "adviser_state_changes", ["at"])

    op.create_table(
        "wrap_ups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("adviser", sa.String(length=64), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_wrap_ups_adviser", "wrap_ups", ["adviser"])
    op.create_index("ix_wrap_ups_call_sid", "wrap_ups", ["call_sid"])


def downgrade() -> None:
    for table in (
        "wrap_ups",
        "adviser_state_changes",
        "applications",
        "call_records",
        "flow_audit",
        "flow_live",
        "flow_versions",
        "user",
    ):
        op.drop_table(table)  # its indexes go with it
