"""SQL tables of the index: the session record as columns, plus what search needs.

Column names are the session record's field names (DESIGN.md), so a row turns back into the
record by name. A few columns exist only for the index and are never shown as record fields:
``pk`` (integer key that SQLite full-text tables refer to), ``command_text`` (the text that
``--command`` searches). The tables are SQLAlchemy Core ``Table`` objects because
``sshrec ls`` runs them on every call and ``sqlalchemy.orm`` would add a fifth to its start-up
time.

Alembic migrations (``migrations/versions``) create these tables; they are written out in
full there, so a later change here never rewrites history. ``SCHEMA_REVISION`` is the head
revision: an index already at it is used without importing Alembic at all.

Dialect details that cannot be said portably live in the migrations: SQLite FTS5 tables and
their triggers, the PostgreSQL ``tsvector`` column with its GIN index and the pg_trgm index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

SCHEMA_REVISION = "0007"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def key_text() -> sa.types.TypeEngine[str]:
    """Text compared byte by byte on both back ends: prefix ranges (``--key SHA256:ab``) then
    mean the same thing in SQLite (always binary) and PostgreSQL (whatever the database
    collation), and a btree index serves them."""
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def big_key() -> sa.types.TypeEngine[int]:
    """BIGINT in PostgreSQL; plain INTEGER in SQLite, where only that aliases the rowid."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UtcTimestamp(sa.types.TypeDecorator[str]):
    """A record timestamp: RFC 3339 UTC text in Python, a real timestamp in SQL.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text that sorts by time.
    Reading gives back the record's own format (``2024-05-01T10:00:03.123456Z``).
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None or value == "":
            return None
        moment = value if isinstance(value, datetime) else parse_timestamp(str(value))
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 / RFC 3339 time; without a zone it is UTC, as all recorded times are."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


metadata = sa.MetaData(naming_convention=NAMING)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("pk", big_key(), primary_key=True, autoincrement=True),
    sa.Column("id", key_text(), nullable=False, unique=True),
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
    sa.Column("started_at", UtcTimestamp),
    sa.Column("ended_at", UtcTimestamp),
    sa.Column("duration", sa.Float),
    sa.Column("exit_status", sa.Integer),
    sa.Column("exit_signal", sa.Text),
    sa.Column("bytes_out", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("bytes_in", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("status", key_text(), nullable=False),
    sa.Column("sha256", key_text()),
    sa.Column("path", sa.Text),
    sa.Column("recorder_version", sa.Text, nullable=False, server_default=""),
    sa.Column("invalid_bytes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("notes", sa.JSON),
    sa.Column("command_text", sa.Text, nullable=False, server_default=""),
    sa.Column("connection_id", key_text()),
    sa.Column("destinations", sa.JSON),
    sa.Column("files", sa.JSON),
    sa.Column("seal", key_text()),
    sa.Column("input_masked", sa.Integer, nullable=False, server_default="0"),
)

# Each filter column leads an index that ends in (started_at, pk): "newest first" then
# reads the index backwards and stops at --limit instead of sorting every match.
FILTER_COLUMNS = ("user", "key_fingerprint", "destination", "client_addr", "status", "exit_status", "mode",
                  "connection_id", "host")
for _column in FILTER_COLUMNS:
    sa.Index(None, sessions.c[_column], sessions.c.started_at, sessions.c.pk)
sa.Index(None, sessions.c.started_at, sessions.c.pk)
sa.Index(None, sessions.c.sha256)
del _column

screen_text = sa.Table(
    "screen_text",
    metadata,
    sa.Column("pk", big_key(), primary_key=True, autoincrement=True),
    sa.Column(
        "session_id",
        key_text(),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("chunk", sa.Integer, nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("marks", sa.Text, nullable=False),  # JSON [[offset, ms], ...]
    sa.Column("text", sa.Text, nullable=False),  # last: SQLite reads it only when asked
    sa.UniqueConstraint("session_id", "chunk"),
)

# What a session reached, one row each, for the filters that match any of them: kind "dest"
# (every destination, ``--dest``) or "file" (every transfer path, ``--file``).
session_targets = sa.Table(
    "session_targets",
    metadata,
    sa.Column("session_id", key_text(), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", key_text(), nullable=False),
    sa.Column("value", key_text(), nullable=False),
    sa.Index("ix_session_targets_kind_value", "kind", "value"),
    sa.Index("ix_session_targets_session_id", "session_id"),
)

# The commands run in a session: ``$ COMMAND`` markers of the shell (recorder/typed.py) with
# their time, and the requested command of a non-interactive one, for ``--typed``.
session_commands = sa.Table(
    "session_commands",
    metadata,
    sa.Column("session_id", key_text(), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Index("ix_session_commands_session_id", "session_id"),
)

index_state = sa.Table(
    "index_state",
    metadata,
    sa.Column("session_id", key_text(), primary_key=True),
    sa.Column("json_path", sa.Text, nullable=False),
    # "mtime_ns:size:inode" of the record and of the cast when they were indexed
    sa.Column("json_sig", sa.Text, nullable=False),
    sa.Column("json_mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("cast_sig", sa.Text, nullable=False),
    # the host whose spool this row was indexed from: each host syncs and removes only its own
    sa.Column("host", key_text(), nullable=False, server_default=""),
    sa.Index("ix_index_state_host", "host"),
)

# Day folders of the spool (recordings/YYYY/MM/DD) with their mtime when last indexed.
spool_dirs = sa.Table(
    "spool_dirs",
    metadata,
    sa.Column("path", key_text(), primary_key=True),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
)

# Recordings verified in object storage (sshrec ship): the cast's key, size and SHA-256, the
# record's, every object shipped (``objects``: suffix -> key), how the upload was verified
# ("sha256-checksum": the store's own SHA-256; "download": read back and hashed), and when
# the local copy was removed (keep_local).
shipments = sa.Table(
    "shipments",
    metadata,
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
    sa.Column("shipped_at", UtcTimestamp, nullable=False),
    sa.Column("local_removed_at", UtcTimestamp),
    sa.Index("ix_shipments_host", "host"),
)

# Legal holds: a session with an unreleased hold is never deleted by retention.
holds = sa.Table(
    "holds",
    metadata,
    sa.Column("pk", big_key(), primary_key=True, autoincrement=True),
    sa.Column("session_id", key_text(), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("held_by", sa.Text, nullable=False),
    sa.Column("held_at", UtcTimestamp, nullable=False),
    sa.Column("store_lock", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("released_at", UtcTimestamp),
    sa.Column("released_by", sa.Text),
    sa.Column("release_reason", sa.Text),
    sa.Index("ix_holds_session_id", "session_id"),
)

# What retention deleted: one row per recording (the same entry is kept as an object in the
# store, under PREFIX/_sshrec/deletions/). A session id here is never indexed again.
deletions = sa.Table(
    "deletions",
    metadata,
    sa.Column("pk", big_key(), primary_key=True, autoincrement=True),
    sa.Column("session_id", key_text(), nullable=False),
    sa.Column("host", key_text(), nullable=False),
    sa.Column("user", key_text(), nullable=False),
    sa.Column("started_at", UtcTimestamp),
    sa.Column("sha256", key_text()),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("deleted_by", sa.Text, nullable=False),
    sa.Column("deleted_at", UtcTimestamp, nullable=False),
    sa.Column("objects", sa.JSON, nullable=False),
    sa.Column("local_files", sa.JSON, nullable=False),
    sa.Column("log_key", sa.Text),
    sa.Index("ix_deletions_session_id", "session_id"),
)

# Columns that are session record fields, in record order.
INTERNAL_COLUMNS = frozenset({"pk", "command_text"})
RECORD_COLUMNS: tuple[str, ...] = tuple(c.name for c in sessions.c if c.name not in INTERNAL_COLUMNS)
