"""Keep the index in step with the spool: incremental sync, full rebuild, one record.

Files are read and parsed (:mod:`.entry`) before any transaction starts; a transaction only
writes rows, a batch at a time, so concurrent ``sshrec index --add`` processes wait for each
other milliseconds, not seconds.

Two writers can race: ``sshrec index`` may read a record just before the recorder replaces
it and write its (older) view after ``--add`` wrote the newer one. Every write therefore
checks, inside its transaction, the modification time of the record version already
indexed and never replaces a newer one with an older one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from .db import ensure_schema, upgrade, writing
from .entry import Entry, RecordError, file_sig, load_entry, stat_or_none
from .entry import command_text as make_command_text
from .record import FIELD_NAMES
from .screentext import words
from .spool import iter_record_files
from .tables import index_state, screen_text, sessions

BATCH = 200  # records per write transaction
SQL_CHUNK = 400  # ids per IN (...) list, well under every back end's parameter limit


@dataclass
class Report:
    """What one indexing run did; ``failed`` holds one message per unreadable record."""

    new: int = 0
    changed: int = 0
    interrupted: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped_newer: int = 0
    text_bytes: int = 0
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def indexed(self) -> int:
        return self.new + self.changed

    def summary(self) -> str:
        parts = [f"{self.new} new", f"{self.changed} changed"]
        if self.interrupted:
            parts.append(f"{self.interrupted} interrupted")
        parts += [f"{self.removed} removed", f"{self.unchanged} unchanged"]
        if self.failed:
            parts.append(f"{len(self.failed)} unreadable")
        return f"{', '.join(parts)} in {self.seconds:.2f} s"


def session_row(entry: Entry) -> dict[str, object]:
    record = entry.record.to_dict()
    row = {name: record[name] for name in FIELD_NAMES}
    row["command_text"] = make_command_text(entry.record.original_command, entry.record.command)
    return row


def _chunks(items: list[str], size: int = SQL_CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def indexed_mtimes(connection: sa.Connection, ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in _chunks(ids):
        query = sa.select(index_state.c.session_id, index_state.c.json_mtime_ns).where(
            index_state.c.session_id.in_(part)
        )
        found.update({row[0]: row[1] for row in connection.execute(query)})
    return found


def delete_sessions(connection: sa.Connection, ids: list[str]) -> None:
    for part in _chunks(ids):
        connection.execute(sa.delete(screen_text).where(screen_text.c.session_id.in_(part)))
        connection.execute(sa.delete(sessions).where(sessions.c.id.in_(part)))
        connection.execute(sa.delete(index_state).where(index_state.c.session_id.in_(part)))


def insert_screen_text(connection: sa.Connection, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text(
                "INSERT INTO screen_text (session_id, chunk, time, marks, text, tsv) "
                "VALUES (:session_id, :chunk, :time, :marks, :text, to_tsvector('simple', :words))"
            ),
            [{**row, "words": " ".join(words(str(row["text"])))} for row in rows],
        )
    else:
        connection.execute(sa.insert(screen_text), rows)


def write_entries(connection: sa.Connection, entries: list[Entry]) -> tuple[int, int, int]:
    """Store ``entries`` in the caller's transaction; returns (new, changed, skipped)."""
    if not entries:
        return 0, 0, 0
    latest: dict[str, Entry] = {}
    for entry in entries:  # the same record twice in one batch: keep the newer
        seen = latest.get(entry.record.id)
        if seen is None or entry.json_mtime_ns >= seen.json_mtime_ns:
            latest[entry.record.id] = entry
    known = indexed_mtimes(connection, list(latest))
    fresh = [e for e in latest.values() if known.get(e.record.id, -1) <= e.json_mtime_ns]
    skipped = len(entries) - len(fresh)
    ids = [e.record.id for e in fresh]
    delete_sessions(connection, [i for i in ids if i in known])
    if fresh:
        connection.execute(sa.insert(sessions), [session_row(e) for e in fresh])
        insert_screen_text(
            connection,
            [
                {
                    "session_id": e.record.id,
                    "chunk": chunk.number,
                    "time": chunk.time,
                    "marks": json.dumps(chunk.marks, separators=(",", ":")),
                    "text": chunk.text,
                }
                for e in fresh
                for chunk in e.chunks
            ],
        )
        connection.execute(
            sa.insert(index_state),
            [
                {
                    "session_id": e.record.id,
                    "json_path": e.json_path,
                    "json_sig": e.json_sig,
                    "json_mtime_ns": e.json_mtime_ns,
                    "cast_sig": e.cast_sig,
                }
                for e in fresh
            ],
        )
    changed = sum(1 for i in ids if i in known)
    return len(ids) - changed, changed, skipped


def _store(engine: sa.Engine, entries: list[Entry], report: Report) -> None:
    with writing(engine) as connection:
        new, changed, skipped = write_entries(connection, entries)
    report.new += new
    report.changed += changed
    report.skipped_newer += skipped
    for entry in entries:
        report.text_bytes += entry.text_bytes
        if entry.record.status == "interrupted":
            report.interrupted += 1


def _load(path: str, report: Report) -> Entry | None:
    try:
        entry = load_entry(path)
    except RecordError as exc:
        report.failed.append(str(exc))
        return None
    except FileNotFoundError:
        return None  # removed while we looked: the next run drops its row
    if entry.problem:
        report.warnings.append(f"{entry.record.path or path}: {entry.problem}")
    return entry


def add_records(engine: sa.Engine, json_paths: Iterable[str]) -> Report:
    """Index the given record files now (what a recorder asks for when a session ends)."""
    started = time.monotonic()
    report = Report()
    ensure_schema(engine)
    entries = [e for e in (_load(p, report) for p in json_paths) if e is not None]
    for start in range(0, len(entries), BATCH):
        _store(engine, entries[start : start + BATCH], report)
    report.seconds = time.monotonic() - started
    return report


@dataclass
class Known:
    json_path: str
    json_sig: str
    cast_sig: str
    status: str


def known_sessions(engine: sa.Engine) -> dict[str, Known]:
    query = sa.select(
        index_state.c.session_id,
        index_state.c.json_path,
        index_state.c.json_sig,
        index_state.c.cast_sig,
        sessions.c.status,
    ).join(sessions, sessions.c.id == index_state.c.session_id)
    with engine.connect() as connection:
        return {row[0]: Known(row[1], row[2], row[3], row[4]) for row in connection.execute(query)}


def _needs_update(path: str, known: Known | None) -> bool:
    if known is None or known.status == "recording":
        return True  # a live session's cast grows, or its recorder may have gone
    if os.path.abspath(path) != known.json_path:
        return True
    if file_sig(stat_or_none(path)) != known.json_sig:
        return True
    return file_sig(stat_or_none(path[: -len(".json")] + ".cast")) != known.cast_sig


def sync(engine: sa.Engine, home: str, progress: Callable[[Report], None] | None = None) -> Report:
    """Bring the index up to date with the spool under ``home``.

    New and changed records are (re)indexed, records still ``recording`` are checked for a
    live recorder every time, and rows whose record file is gone are removed.
    """
    started = time.monotonic()
    report = Report()
    ensure_schema(engine)
    known = known_sessions(engine)
    seen: set[str] = set()
    pending: list[Entry] = []
    for path in iter_record_files(home):
        session_id = os.path.basename(path)[: -len(".json")]
        seen.add(session_id)
        state = known.get(session_id)
        if state is not None and not _needs_update(path, state):
            report.unchanged += 1
            continue
        entry = _load(path, report)
        if entry is None:
            continue
        if (
            state is not None
            and entry.json_sig == state.json_sig
            and entry.cast_sig == state.cast_sig
            and entry.record.status == state.status
        ):
            report.unchanged += 1  # a live recording with nothing new
            continue
        pending.append(entry)
        if len(pending) >= BATCH:
            _store(engine, pending, report)
            pending = []
            if progress:
                progress(report)
    if pending:
        _store(engine, pending, report)
    report.removed = _remove_missing(engine, known, seen)
    if report.indexed or report.removed:
        refresh_statistics(engine)
    report.seconds = time.monotonic() - started
    return report


def refresh_statistics(engine: sa.Engine) -> None:
    """Let SQLite's planner know the table sizes (it picks indexes by them). A sampled
    ANALYZE costs milliseconds; PostgreSQL's autovacuum does this on its own."""
    if engine.dialect.name != "sqlite":
        return
    with writing(engine) as connection:
        connection.exec_driver_sql("PRAGMA analysis_limit = 1000")
        connection.exec_driver_sql("ANALYZE")


def _remove_missing(engine: sa.Engine, known: dict[str, Known], seen: set[str]) -> int:
    """Drop rows whose record file is gone (checked again now: --add may have just added it)."""
    gone = [i for i, k in known.items() if i not in seen and not os.path.exists(k.json_path)]
    for start in range(0, len(gone), BATCH):
        with writing(engine) as connection:
            delete_sessions(connection, gone[start : start + BATCH])
    return len(gone)


def drop_all(engine: sa.Engine) -> None:
    """Remove every sshrec table (and the schema version) from the index database."""
    with writing(engine) as connection:
        sqlite = connection.dialect.name == "sqlite"
        names = ["screen_fts", "command_fts"] if sqlite else []
        names += ["screen_text", "index_state", "sessions", "alembic_version"]
        for name in names:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}" + ("" if sqlite else " CASCADE"))


def rebuild(engine: sa.Engine, home: str, progress: Callable[[Report], None] | None = None) -> Report:
    """Drop the index and recreate every row from the files alone.

    Rows come back batch by batch, so until it finishes a concurrent ``ls`` sees part of
    the index; recorders' ``--add`` calls keep working throughout.
    """
    drop_all(engine)
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # VACUUM must run outside any transaction
        try:
            raw.cursor().execute("VACUUM")
        finally:
            raw.close()
    upgrade(engine, "head")
    return sync(engine, home, progress)
