"""Labels of 32 bits: INTEGER label columns on PostgreSQL

A label may be any number from 0 to 2,147,483,647 (a CSV labelled by ids); SMALLINT
stopped at 32,767 on PostgreSQL. SQLite's columns already hold any integer whatever
they are declared as, so SQLite catalogs are left as they are (rebuilding ``images``
would copy every pixel); the models say so (``catalog.db.types.LABEL``).

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column) of every label.
LABEL_COLUMNS = (
    ("images", "label"),
    ("label_counts", "label"),
    ("decisions", "label"),
    ("image_state", "label"),
    ("image_state", "source_label"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in LABEL_COLUMNS:
        op.alter_column(
            table, column, existing_type=sa.SmallInteger(), type_=sa.Integer(),
            existing_nullable=True,
        )  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in LABEL_COLUMNS:
        op.alter_column(
            table, column, existing_type=sa.Integer(), type_=sa.SmallInteger(),
            existing_nullable=True,
        )  # fmt: skip
