"""Commands typed in sessions (``--typed``) and bytes typed with echo off that were not kept.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

``session_commands`` has one row per ``$ COMMAND`` marker of a session's cast (and the
requested command of a non-interactive session) with its time. PostgreSQL gets a trigram
index on the command when pg_trgm is there (as 0002 does for command_text); SQLite scans it.
Existing sessions are marked stale so the next ``sshrec index`` reads their casts again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def key_text() -> sa.types.TypeEngine[str]:
    """Must match sshrec.schema.tables.key_text."""
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.add_column("sessions", sa.Column("input_masked", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "session_commands",
        sa.Column("session_id", key_text(), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("command", sa.Text, nullable=False),
    )
    op.create_index("ix_session_commands_session_id", "session_commands", ["session_id"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(
            sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        op.execute("CREATE INDEX ix_session_commands_command_trgm ON session_commands "
                   "USING gin (command gin_trgm_ops)")
    op.execute("UPDATE index_state SET json_sig = ''")
    op.execute("DELETE FROM spool_dirs")


def downgrade() -> None:
    op.drop_table("session_commands")
    op.drop_column("sessions", "input_masked")
