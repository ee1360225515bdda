"""Sessions, their screen text, and full-text search over it.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

SQLite: ``screen_fts`` is an FTS5 index over ``screen_text`` (external content, kept in step
by triggers), tokenised like sshrec.schema.screentext.words (letters and digits, case and
accents folded). PostgreSQL: ``screen_text.tsv`` holds the words as a ``tsvector`` with the
'simple' configuration (no stemming, same words as SQLite) under a GIN index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def key_text() -> sa.types.TypeEngine:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def big_key() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


FILTERS = ("user", "key_fingerprint", "destination", "client_addr", "status", "exit_status")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("pk", big_key(), primary_key=True, autoincrement=True),
        sa.Column("id", key_text(), nullable=False),
        sa.Column("user", key_text(), nullable=False, server_default=""),
        sa.Column("uid", sa.Integer),
        sa.Column("host", key_text(), nullable=False, server_default=""),
        sa.Column("client_addr", key_text()),
        sa.Column("client_port", sa.Integer),
        sa.Column("server_addr", key_text()),
        sa.Column("server_port", sa.Integer),
        sa.Column("auth_method", key_text()),
        sa.Column("key_type", key_text()),
        sa.Column("key_fingerprint", key_text()),
        sa.Column("original_command", sa.Text),
        sa.Column("command", sa.JSON, nullable=False),
        sa.Column("destination", key_text()),
        sa.Column("mode", key_text(), nullable=False),
        sa.Column("term", sa.Text),
        sa.Column("cols", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("duration", sa.Float),
        sa.Column("exit_status", sa.Integer),
        sa.Column("exit_signal", sa.Text),
        sa.Column("bytes_out", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes_in", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status", key_text(), nullable=False),
        sa.Column("sha256", key_text()),
        sa.Column("path", sa.Text),
        sa.Column("recorder_version", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("pk", name="pk_sessions"),
        sa.UniqueConstraint("id", name="uq_sessions_id"),
    )
    for column in FILTERS:
        op.create_index(f"ix_sessions_{column}_started_at_pk", "sessions", [column, "started_at", "pk"])
    op.create_index("ix_sessions_started_at_pk", "sessions", ["started_at", "pk"])
    op.create_index("ix_sessions_sha256", "sessions", ["sha256"])

    op.create_table(
        "screen_text",
        sa.Column("pk", big_key(), primary_key=True, autoincrement=True),
        sa.Column("session_id", key_text(), nullable=False),
        sa.Column("chunk", sa.Integer, nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("marks", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_screen_text"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name="fk_screen_text_session_id_sessions",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("session_id", "chunk", name="uq_screen_text_session_id_chunk"),
    )

    op.create_table(
        "index_state",
        sa.Column("session_id", key_text(), nullable=False),
        sa.Column("json_path", sa.Text, nullable=False),
        sa.Column("json_sig", sa.Text, nullable=False),
        sa.Column("json_mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("cast_sig", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_index_state"),
    )

    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE screen_fts USING fts5(text, content='screen_text', "
            "content_rowid='pk', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER screen_text_ai AFTER INSERT ON screen_text BEGIN "
            "INSERT INTO screen_fts(rowid, text) VALUES (new.pk, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER screen_text_ad AFTER DELETE ON screen_text BEGIN "
            "INSERT INTO screen_fts(screen_fts, rowid, text) VALUES ('delete', old.pk, old.text); END"
        )
    else:
        op.execute("ALTER TABLE screen_text ADD COLUMN tsv tsvector NOT NULL")
        op.execute("CREATE INDEX ix_screen_text_tsv ON screen_text USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS screen_text_ai")
        op.execute("DROP TRIGGER IF EXISTS screen_text_ad")
        op.execute("DROP TABLE IF EXISTS screen_fts")
    op.drop_table("index_state")
    op.drop_table("screen_text")
    op.drop_table("sessions")
