"""The collector's seal: the last digest of the chain over a cast (schema/chain.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("seal", sa.Text().with_variant(sa.Text(collation="C"), "postgresql")))


def downgrade() -> None:
    op.drop_column("sessions", "seal")
