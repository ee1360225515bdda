"""Fleet: many hosts in one index, recordings shipped to object storage, legal holds, deletions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

- ``index_state.host``: the host whose spool a row was indexed from. Many gateways index into
  one PostgreSQL database; each one's ``sshrec index`` looks at, and removes, only its own
  rows. Rows already there are this host's (an index before this revision had one host).
- ``sessions`` gets an index on ``host`` for ``sshrec ls --host``.
- ``shipments``: a recording verified in the store (key, size, SHA-256, how it was verified),
  and when its local copy was removed.
- ``holds``: legal holds with their reasons, who placed and released them.
- ``deletions``: every recording that retention deleted (the log is also kept in the store).
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def key_text() -> sa.types.TypeEngine[str]:
    """Must match sshrec.schema.tables.key_text."""
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def big_key() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("index_state", sa.Column("host", key_text(), nullable=False, server_default=""))
    op.get_bind().execute(sa.text("UPDATE index_state SET host = :host"), {"host": os.uname().nodename})
    op.create_index("ix_index_state_host", "index_state", ["host"])
    op.create_index("ix_sessions_host_started_at_pk", "sessions", ["host", "started_at", "pk"])
    op.create_table(
        "shipments",
        sa.Column("session_id", key_text(), primary_key=True),
        sa.Column("host", key_text(), nullable=False),
        sa.Column("store", sa.Text, nullable=False),
        sa.Column("cast_key", sa.Text, nullable=False),
        sa.Column("cast_size", sa.BigInteger, nullable=False),
        sa.Column("cast_sha256", key_text(), nullable=False),
        sa.Column("record_key", sa.Text, nullable=False),
        sa.Column("record_sha256", key_text(), nullable=False),
        sa.Column("objects", sa.JSON, nullable=False),
        sa.Column("verified_by", sa.Text, nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local_removed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_shipments_host", "shipments", ["host"])
    op.create_table(
        "holds",
        sa.Column("pk", big_key(), primary_key=True, autoincrement=True),
        sa.Column("session_id", key_text(), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("held_by", sa.Text, nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("store_lock", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("released_at", sa.DateTime(timezone=True)),
        sa.Column("released_by", sa.Text),
        sa.Column("release_reason", sa.Text),
    )
    op.create_index("ix_holds_session_id", "holds", ["session_id"])
    op.create_table(
        "deletions",
        sa.Column("pk", big_key(), primary_key=True, autoincrement=True),
        sa.Column("session_id", key_text(), nullable=False),
        sa.Column("host", key_text(), nullable=False),
        sa.Column("user", key_text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("sha256", key_text()),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("deleted_by", sa.Text, nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("objects", sa.JSON, nullable=False),
        sa.Column("local_files", sa.JSON, nullable=False),
        sa.Column("log_key", sa.Text),
    )
    op.create_index("ix_deletions_session_id", "deletions", ["session_id"])


def downgrade() -> None:
    op.drop_table("deletions")
    op.drop_table("holds")
    op.drop_table("shipments")
    op.drop_index("ix_sessions_host_started_at_pk", "sessions")
    op.drop_index("ix_index_state_host", "index_state")
    with op.batch_alter_table("index_state") as batch:
        batch.drop_column("host")
