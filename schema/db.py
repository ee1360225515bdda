"""One URL picks the index database; this module turns it into a ready SQLAlchemy engine.

SQLite is the default and is shared by many short-lived processes (an indexer per ended
session, auditors running ``sshrec ls``), so it runs in WAL mode (readers never wait for the
writer) with a long busy timeout (writers queue instead of failing). Python's sqlite3 module
would open transactions lazily and never around DDL; here every transaction is an explicit
``BEGIN``, and writers use ``BEGIN IMMEDIATE`` so they take the write lock up front and wait
for it, rather than failing with "database is locked" when a read turns into a write.

The schema is brought to the head revision on first use. The common case, an index already
at head, costs one ``SELECT`` and no Alembic import; otherwise the upgrade runs under a lock
(the SQLite write lock, a PostgreSQL advisory lock) so that fifty processes starting on a
fresh index migrate it exactly once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from .tables import SCHEMA_REVISION

BUSY_TIMEOUT_S = 60.0
MIGRATION_LOCK_KEY = 0x73736872  # "sshr": PostgreSQL advisory lock id for migrations
_WRITE = "sshrec_write"


class IndexUnusable(RuntimeError):
    """The index cannot be used; the message says which index and what to do."""


def describe(url: str) -> str:
    """The URL without a password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def open_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite files (and their directory) are created as needed."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise IndexUnusable(
            f"{url!r} is not a database URL (try sqlite:////path/index.db or postgresql+psycopg://user@host/db)"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    try:
        return sa.create_engine(parsed, pool_pre_ping=False)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise IndexUnusable(
            f"cannot use {describe(url)}: {exc} (PostgreSQL needs: pip install 'sshrec[postgres]')"
        ) from None


def _sqlite_engine(url: sa.engine.URL) -> sa.Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        _private_sqlite_file(os.path.abspath(database))
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _private_sqlite_file(path: str) -> None:
    """The index holds every session's commands and screen text: it is created 0600 (SQLite
    gives its -wal and -shm files the same mode) and tightened if it was ever made looser.
    One we may not open is a clear "not permitted", not SQLite's "unable to open"."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        return
    except FileExistsError:
        pass
    except PermissionError:
        raise IndexUnusable(f"not permitted: cannot create the index {path} (the folder belongs to "
                            "another user; use your own with --db or SSHREC_DB)") from None
    if not os.access(path, os.R_OK):
        owner = _owner_name(path)
        raise IndexUnusable(f"not permitted: the index {path} is readable only by {owner}; "
                            "ask them, or use your own index (--db, SSHREC_DB)")
    for suffix in ("", "-wal", "-shm"):
        try:
            info = os.stat(path + suffix)
            if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                os.chmod(path + suffix, info.st_mode & 0o700)
        except OSError:
            continue


def _owner_name(path: str) -> str:
    import pwd

    try:
        uid = os.stat(path).st_uid
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return "its owner"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see module doc)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:  # switching a new file to WAL needs a moment of exclusive access
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            break
        except Exception as exc:  # sqlite3.OperationalError: database is locked
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    cursor.execute("PRAGMA cache_size = -32768")  # 32 MiB, allocated only as pages are read
    cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; WAL stays consistent
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a write transaction, committed on success."""
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


@contextmanager
def reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a read transaction (one consistent snapshot in SQLite's WAL)."""
    with engine.connect() as connection, connection.begin():
        yield connection


def current_revision(engine: sa.Engine) -> str | None:
    """The index's schema revision, or None for an empty database."""
    try:
        with reading(engine) as connection:
            return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except sa.exc.OperationalError as exc:
        if _missing_table(exc):
            return None
        raise _unusable(engine, exc) from None
    except sa.exc.ProgrammingError as exc:
        if _missing_table(exc):
            return None
        raise _unusable(engine, exc) from None


def _missing_table(exc: sa.exc.DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _unusable(engine: sa.Engine, exc: Exception) -> IndexUnusable:
    detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return IndexUnusable(f"cannot open index {describe(str(engine.url))}: {detail}")


def ensure_schema(engine: sa.Engine) -> None:
    """Create or upgrade the index schema to head; cheap when it is already there."""
    try:
        revision = current_revision(engine)
    except sa.exc.DBAPIError as exc:
        raise _unusable(engine, exc) from None
    if revision == SCHEMA_REVISION:
        return
    upgrade(engine, "head")


def upgrade(engine: sa.Engine, target: str = "head") -> None:
    """Run Alembic migrations up to ``target`` while holding the migration lock."""
    from . import migrate  # Alembic: only when the schema actually changes

    try:
        with writing(engine) as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            migrate.upgrade(connection, target)
    except migrate.UnknownRevision as exc:
        raise IndexUnusable(
            f"index {describe(str(engine.url))} has schema revision {exc.revision}, "
            "which this sshrec does not know: upgrade sshrec, or rebuild the index "
            "with: sshrec index --rebuild"
        ) from None
    except sa.exc.DBAPIError as exc:
        raise _unusable(engine, exc) from None


def open_index(url: str) -> sa.Engine:
    """The engine for ``url`` with its schema at head."""
    engine = open_engine(url)
    ensure_schema(engine)
    return engine
