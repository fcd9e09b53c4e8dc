"""wrap_ups: one wrap-up per adviser and call (a unique index)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

The API answers a second wrap-up of the same call with 409 (wrap_up_done); the index makes that
hold when two arrive at the same moment. A database may hold second wrap-ups saved before: the
first of each (the lowest id, what reports counted first) is kept, the later ones are deleted.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM wrap_ups WHERE id NOT IN "
        "(SELECT min(id) FROM wrap_ups GROUP BY adviser, call_sid)"
    )
    op.create_index(
        "ux_wrap_ups_adviser_call_sid", "wrap_ups", ["adviser", "call_sid"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ux_wrap_ups_adviser_call_sid", table_name="wrap_ups")
