"""users.token_version: raising it signs out every token the user was given before

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Existing users start at 0. Tokens issued before this release carry no version (nor user id) and
are refused: everyone signs in once more after the upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user") as table:
        table.add_column(
            sa.Column("token_version", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("user") as table:
        table.drop_column("token_version")
