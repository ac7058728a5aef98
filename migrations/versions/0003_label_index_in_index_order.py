"""Label index carries idx, so one label of one split is read in index order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index("ix_images_dataset_split_label")
        batch_op.create_index(
            "ix_images_dataset_split_label_idx",
            ["dataset_id", "split", "label", "idx"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index("ix_images_dataset_split_label_idx")
        batch_op.create_index(
            "ix_images_dataset_split_label", ["dataset_id", "split", "label"], unique=False
        )
