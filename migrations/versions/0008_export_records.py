"""Export records: output format, chosen ids, decision state

Adds ``exports.output`` (the output format: folder, idx, npz, parquet,
webdataset; existing exports are folders) and widens ``exported_files.size``
to 64 bits, since one container file (a shard, a parquet file) can pass 2 GiB.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("output", sa.String(length=16), server_default="folder", nullable=False)
        )
    with op.batch_alter_table("exported_files", schema=None) as batch_op:
        batch_op.alter_column(
            "size", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("exported_files", schema=None) as batch_op:
        batch_op.alter_column(
            "size", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
        )
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_column("output")
