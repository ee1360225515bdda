"""Multiplexed connections, every destination, transfer file operations; mode as a filter.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``sessions`` gains the record fields ``connection_id``, ``destinations`` and ``files``;
``session_targets`` holds one row per destination and per transferred path, so ``--dest`` and
``--file`` match any of them through an index. Existing rows are marked stale so the next
``sshrec index`` reads their records again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def key_text() -> sa.types.TypeEngine[str]:
    """Must match sshrec.schema.tables.key_text."""
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.add_column("sessions", sa.Column("connection_id", key_text()))
    op.add_column("sessions", sa.Column("destinations", sa.JSON))
    op.add_column("sessions", sa.Column("files", sa.JSON))
    for column in ("mode", "connection_id"):
        op.create_index(f"ix_sessions_{column}_started_at_pk", "sessions", [column, "started_at", "pk"])
    op.create_table(
        "session_targets",
        sa.Column("session_id", key_text(), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", key_text(), nullable=False),
        sa.Column("value", key_text(), nullable=False),
    )
    op.create_index("ix_session_targets_kind_value", "session_targets", ["kind", "value"])
    op.create_index("ix_session_targets_session_id", "session_targets", ["session_id"])
    op.execute("INSERT INTO session_targets (session_id, kind, value) "
               "SELECT id, 'dest', destination FROM sessions WHERE destination IS NOT NULL")
    op.execute("UPDATE index_state SET json_sig = ''")
    op.execute("DELETE FROM spool_dirs")  # so the catch-up before ls looks at every folder again


def downgrade() -> None:
    op.drop_table("session_targets")
    for column in ("mode", "connection_id"):
        op.drop_index(f"ix_sessions_{column}_started_at_pk", "sessions")
    op.drop_column("sessions", "files")
    op.drop_column("sessions", "destinations")
    op.drop_column("sessions", "connection_id")
