"""Day folders already indexed, so ``ls`` can pick up new sessions in milliseconds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

``spool_dirs`` keeps the modification time of every recordings/YYYY/MM/DD folder as it was
when its records were last indexed. A new or replaced record changes its folder's mtime, so
``sshrec ls``/``search`` re-read only folders whose mtime moved (one stat per day) instead of
every record (two stats per session).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spool_dirs",
        sa.Column("path", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), primary_key=True),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spool_dirs")
