"""Substring search on commands; record fields invalid_bytes and notes.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

``sshrec ls --command TEXT`` looks for TEXT anywhere in original_command or command. A plain
``LIKE '%TEXT%'`` reads every row; at a million sessions that is far over the 50 ms budget,
so ``sessions.command_text`` (both, one per line) gets a trigram index: an FTS5 table with
the trigram tokenizer in SQLite, pg_trgm's GIN operator class in PostgreSQL (when the
extension can be created; without it the same query still works, only slower).

Existing rows get command_text computed here, and their index_state is marked stale so the
next ``sshrec index`` re-reads the records for the two new fields.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def command_text(original: str | None, command: object) -> str:
    """Must match sshrec.schema.entry.command_text."""
    if isinstance(command, str):
        command = json.loads(command)
    argv = " ".join(str(arg) for arg in command or [])
    return "\n".join(part for part in (original or "", argv) if part)


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("sessions", sa.Column("invalid_bytes", sa.Integer, nullable=False, server_default="0"))
    op.add_column("sessions", sa.Column("notes", sa.JSON))
    op.add_column("sessions", sa.Column("command_text", sa.Text, nullable=False, server_default=""))

    rows = bind.execute(sa.text("SELECT pk, original_command, command FROM sessions")).all()
    update = sa.text("UPDATE sessions SET command_text = :text WHERE pk = :pk")
    batch: list[dict[str, object]] = []
    for pk, original, command in rows:
        batch.append({"pk": pk, "text": command_text(original, command)})
        if len(batch) >= 5000:
            bind.execute(update, batch)
            batch = []
    if batch:
        bind.execute(update, batch)
    op.execute("UPDATE index_state SET json_sig = ''")

    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE command_fts USING fts5(command_text, content='sessions', "
            "content_rowid='pk', tokenize='trigram')"
        )
        op.execute("INSERT INTO command_fts(command_fts) VALUES ('rebuild')")
        op.execute(
            "CREATE TRIGGER sessions_command_ai AFTER INSERT ON sessions BEGIN "
            "INSERT INTO command_fts(rowid, command_text) VALUES (new.pk, new.command_text); END"
        )
        op.execute(
            "CREATE TRIGGER sessions_command_ad AFTER DELETE ON sessions BEGIN "
            "INSERT INTO command_fts(command_fts, rowid, command_text) "
            "VALUES ('delete', old.pk, old.command_text); END"
        )
        op.execute(
            "CREATE TRIGGER sessions_command_au AFTER UPDATE OF command_text ON sessions BEGIN "
            "INSERT INTO command_fts(command_fts, rowid, command_text) "
            "VALUES ('delete', old.pk, old.command_text); "
            "INSERT INTO command_fts(rowid, command_text) VALUES (new.pk, new.command_text); END"
        )
    elif _ensure_pg_trgm(bind):
        op.execute(
            "CREATE INDEX ix_sessions_command_text_trgm ON sessions USING gin (command_text gin_trgm_ops)"
        )


def _ensure_pg_trgm(bind: sa.Connection) -> bool:
    """Create pg_trgm if this role may (it is a trusted extension since PostgreSQL 13)."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    if not bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first():
        return False
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("sessions_command_ai", "sessions_command_ad", "sessions_command_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS command_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_sessions_command_text_trgm")
    op.drop_column("sessions", "command_text")
    op.drop_column("sessions", "notes")
    op.drop_column("sessions", "invalid_bytes")
