"""Decision sets: decisions recorded together share a set id

A grid selection tagged, untagged, excluded or relabelled in one go is one decision
set; undoing the set reverts every decision in it. The column is nullable: decisions
recorded one by one (and every decision before this revision) belong to no set.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("set_id", sa.Integer(), nullable=True))
        batch.create_index("ix_decisions_set_id", ["set_id"])


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_index("ix_decisions_set_id")
        batch.drop_column("set_id")
