"""Curation decisions: relabel, exclude/include, tag/untag, with history

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("label", sa.SmallInteger(), nullable=True),
        sa.Column("tag", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undoes", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_decisions_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_decisions_image_id_id", ["image_id", "id"], unique=False)
    op.create_table(
        "image_state",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.SmallInteger(), nullable=True),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("split", sa.String(length=32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("source_label", sa.SmallInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_state_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_image_state")),
    )
    with op.batch_alter_table("image_state", schema=None) as batch_op:
        batch_op.create_index(
            "ix_image_state_dataset_id_split", ["dataset_id", "split"], unique=False
        )
    op.create_table(
        "image_tags",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_tags_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", "tag", name=op.f("pk_image_tags")),
    )
    with op.batch_alter_table("image_tags", schema=None) as batch_op:
        batch_op.create_index("ix_image_tags_tag_image_id", ["tag", "image_id"], unique=False)
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_column("decision_id")
    with op.batch_alter_table("image_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_image_tags_tag_image_id")
    op.drop_table("image_tags")
    with op.batch_alter_table("image_state", schema=None) as batch_op:
        batch_op.drop_index("ix_image_state_dataset_id_split")
    op.drop_table("image_state")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_image_id_id")
        batch_op.drop_index("ix_decisions_created_at")
    op.drop_table("decisions")
