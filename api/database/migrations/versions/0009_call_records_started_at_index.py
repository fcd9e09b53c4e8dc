"""call_records: an index on started_at, for reports

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

A report reads one period of call records (usually a month of 13 or more kept). Without the
index both databases read every row of the table; with it only the period's (bench/reports.py,
docs/BENCHMARKS.md: a month by product over a million records). A plain index, not a rollup
table: nothing to keep in step with the records, and the figures are already well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_call_records_started_at", "call_records", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_call_records_started_at", table_name="call_records")
