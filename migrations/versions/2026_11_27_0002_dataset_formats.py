"""dataset formats: detected format, meta JSON, server-side source path

Revision ID: 0002_dataset_formats
Revises: 0001_initial
Create Date: 2026-11-27 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_dataset_formats"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("format", sa.String(length=32), nullable=False, server_default="npz"))
        batch_op.add_column(sa.Column("meta", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column("source_path", sa.String(length=4096), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("source_path")
        batch_op.drop_column("meta")
        batch_op.drop_column("format")
