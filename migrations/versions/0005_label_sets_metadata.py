"""Label sets with class names, unlabeled images, per-image metadata

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label_set", sa.String(length=64), nullable=True))
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("file_md5", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("file_sha256", sa.String(length=64), nullable=True))
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.alter_column("label", existing_type=sa.SmallInteger(), nullable=True)
    op.create_table(
        "label_names",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"],
            name=op.f("fk_label_names_dataset_id_datasets"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "number", name=op.f("pk_label_names")),
    )  # fmt: skip
    op.create_table(
        "image_metadata",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"],
            name=op.f("fk_image_metadata_image_id_images"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", "key", name=op.f("pk_image_metadata")),
    )  # fmt: skip
    op.create_index("ix_image_metadata_key_value", "image_metadata", ["key", "value"])
    # Every dataset so far holds MNIST-style digits: give each the ten digit names.
    op.execute(
        "INSERT INTO label_names (dataset_id, number, name) "
        "SELECT d.id, n.number, n.name FROM datasets d CROSS JOIN ("
        + " UNION ALL ".join(f"SELECT {i} AS number, '{i}' AS name" for i in range(10))
        + ") n"
    )
    op.execute("UPDATE datasets SET label_set = 'digits'")


def downgrade() -> None:
    op.drop_index("ix_image_metadata_key_value", table_name="image_metadata")
    op.drop_table("image_metadata")
    op.drop_table("label_names")
    op.execute("DELETE FROM images WHERE label IS NULL")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.alter_column("label", existing_type=sa.SmallInteger(), nullable=False)
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("file_sha256")
        batch_op.drop_column("file_md5")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("label_set")
