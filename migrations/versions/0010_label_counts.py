"""Images per (dataset, split, source label), kept so counts need not scan the images

Images never change after an ingest (a split is replaced whole), so the store rewrites
these rows for the splits it touches; this revision fills them for catalogs that
already hold images.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "label_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=32), nullable=False),
        sa.Column("label", sa.SmallInteger(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_label_counts_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_counts")),
    )
    op.create_index(
        "ix_label_counts_dataset_split_label",
        "label_counts",
        ["dataset_id", "split", "label"],
        unique=False,
    )
    # Backfill: one grouped scan of the images' (dataset_id, split, label, idx) index.
    op.execute(
        "INSERT INTO label_counts (dataset_id, split, label, n) "
        "SELECT dataset_id, split, label, COUNT(*) FROM images "
        "GROUP BY dataset_id, split, label"
    )


def downgrade() -> None:
    op.drop_index("ix_label_counts_dataset_split_label", table_name="label_counts")
    op.drop_table("label_counts")
