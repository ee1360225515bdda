"""Keep the index in step with the spool: incremental sync, full rebuild, one record.

Files are read and parsed (:mod:`.entry`) before any transaction starts; a transaction only
writes rows, a batch at a time, so concurrent ``sshrec index --add`` processes wait for each
other milliseconds, not seconds.

Many hosts may share one index (a fleet on one PostgreSQL database): every row of
``index_state`` names the host whose spool it came from, and a host's sync looks at, and
removes, only its own rows; a session another host already indexed is never taken over.
Sessions shipped to object storage (``shipments``) stay in the index when their local copy
is removed; sessions retention deleted (``deletions``) are not indexed again.

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

from .db import IndexUnusable, ensure_schema, reading, upgrade, writing
from .entry import Entry, RecordError, cast_path_for, file_sig, load_entry, lock_path_for, stat_or_none
from .entry import command_text as make_command_text
from .record import FIELD_NAMES, SessionRecord
from .screentext import words
from .spool import USERS, day_dirs, record_files_in, recorder_alive_at
from .storage import Store
from .tables import (
    deletions,
    holds,
    index_state,
    screen_text,
    session_commands,
    session_targets,
    sessions,
    shipments,
    spool_dirs,
)

BATCH = 200  # records per write transaction
SQL_CHUNK = 400  # ids per IN (...) list, well under every back end's parameter limit
RACY_NS = 2_000_000_000  # a folder changed this recently is looked at again next time
ProgressFn = Callable[[int, int, "Report"], None]


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
    new_by_user: dict[str, int] = field(default_factory=dict)
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


def this_host() -> str:
    """The name rows indexed here carry (the same name the recorder writes in ``host``)."""
    return os.uname().nodename


def session_row(entry: Entry) -> dict[str, object]:
    record = entry.record.to_dict()
    row = {name: record[name] for name in FIELD_NAMES}
    row["command_text"] = make_command_text(entry.record.original_command, entry.record.command)
    return row


def target_values(record: SessionRecord) -> list[tuple[str, str]]:
    """The (kind, value) rows of session_targets: every destination and transferred path."""
    found: dict[tuple[str, str], None] = {}
    if record.destination:
        found["dest", record.destination] = None
    for item in record.destinations or []:
        if isinstance(item, dict):
            for key in ("destination", "addr"):
                if item.get(key):
                    found["dest", str(item[key])] = None
    for item in record.files or []:
        if isinstance(item, dict):
            for key in ("path", "to"):
                if item.get(key):
                    found["file", str(item[key])] = None
    return list(found)


def _chunks(items: list[str], size: int = SQL_CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def indexed_mtimes(connection: sa.Connection, ids: list[str]) -> dict[str, tuple[int, str]]:
    """(record mtime, host) of the rows already indexed for ``ids``."""
    found: dict[str, tuple[int, str]] = {}
    for part in _chunks(ids):
        query = sa.select(index_state.c.session_id, index_state.c.json_mtime_ns, index_state.c.host).where(
            index_state.c.session_id.in_(part)
        )
        found.update({row[0]: (row[1], row[2]) for row in connection.execute(query)})
    return found


def _ids_in(connection: sa.Connection, column: sa.Column[str], ids: list[str]) -> set[str]:
    found: set[str] = set()
    for part in _chunks(ids):
        found.update(connection.execute(sa.select(column).where(column.in_(part))).scalars())
    return found


def deleted_ids(connection: sa.Connection, ids: list[str]) -> set[str]:
    """Those of ``ids`` that retention deleted (never indexed again)."""
    return _ids_in(connection, deletions.c.session_id, ids)


def delete_sessions(connection: sa.Connection, ids: list[str]) -> None:
    for part in _chunks(ids):
        connection.execute(sa.delete(screen_text).where(screen_text.c.session_id.in_(part)))
        connection.execute(sa.delete(session_targets).where(session_targets.c.session_id.in_(part)))
        connection.execute(sa.delete(session_commands).where(session_commands.c.session_id.in_(part)))
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


def write_entries(connection: sa.Connection, entries: list[Entry],
                  conflicts: list[str] | None = None) -> tuple[list[Entry], int, int]:
    """Store ``entries`` in the caller's transaction; returns (the new ones, changed, skipped).

    A session another host indexed, or one retention deleted, is skipped; ``conflicts`` gets
    a message for each of the first kind (ids are unique across a fleet: it is a copy)."""
    if not entries:
        return [], 0, 0
    latest: dict[str, Entry] = {}
    for entry in entries:  # the same record twice in one batch: keep the newer
        seen = latest.get(entry.record.id)
        if seen is None or entry.json_mtime_ns >= seen.json_mtime_ns:
            latest[entry.record.id] = entry
    known = indexed_mtimes(connection, list(latest))
    gone = deleted_ids(connection, list(latest))
    here = this_host()
    fresh = []
    for e in latest.values():
        mtime, host = known.get(e.record.id, (-1, e.host or here))
        if host and host != (e.host or here):
            if conflicts is not None:
                conflicts.append(f"{e.json_path}: session {e.record.id} is already indexed from host {host!r}; "
                                 "ids are unique across hosts, so this is a copy (remove it or index it there)")
        elif e.record.id not in gone and mtime <= e.json_mtime_ns:
            fresh.append(e)
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
        targets = [{"session_id": e.record.id, "kind": kind, "value": value}
                   for e in fresh for kind, value in target_values(e.record)]
        if targets:
            connection.execute(sa.insert(session_targets), targets)
        commands = [{"session_id": e.record.id, "time": t, "command": c} for e in fresh for t, c in e.commands]
        if commands:
            connection.execute(sa.insert(session_commands), commands)
        connection.execute(
            sa.insert(index_state),
            [
                {
                    "session_id": e.record.id,
                    "json_path": e.json_path,
                    "json_sig": e.json_sig,
                    "json_mtime_ns": e.json_mtime_ns,
                    "cast_sig": e.cast_sig,
                    "host": e.host or here,
                }
                for e in fresh
            ],
        )
    new = [e for e in fresh if e.record.id not in known]
    return new, len(fresh) - len(new), skipped


def _store(engine: sa.Engine, entries: list[Entry], report: Report) -> None:
    with writing(engine) as connection:
        new, changed, skipped = write_entries(connection, entries, report.failed)
    report.new += len(new)
    for entry in new:
        report.new_by_user[entry.record.user] = report.new_by_user.get(entry.record.user, 0) + 1
    report.changed += changed
    report.skipped_newer += skipped
    for entry in entries:
        report.text_bytes += entry.text_bytes
        if entry.record.status == "interrupted":
            report.interrupted += 1


def _load(path: str, report: Report, owner: int | None = None) -> Entry | None:
    try:
        entry = load_entry(path, owner_uid=owner)
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


def known_sessions(engine: sa.Engine, ids: list[str] | None = None, status: str | None = None,
                   host: str | None = None) -> dict[str, Known]:
    """What the index holds about sessions: all of them, those ``ids``, or those with ``status``;
    with ``host``, only those indexed from that host's spool."""
    query = sa.select(
        index_state.c.session_id,
        index_state.c.json_path,
        index_state.c.json_sig,
        index_state.c.cast_sig,
        sessions.c.status,
    ).join(sessions, sessions.c.id == index_state.c.session_id)
    if status is not None:
        query = query.where(sessions.c.status == status)
    if host is not None:
        query = query.where(index_state.c.host == host)
    found: dict[str, Known] = {}
    with engine.connect() as connection:
        for part in [None] if ids is None else _chunks(ids):
            selected = query if part is None else query.where(index_state.c.session_id.in_(part))
            found.update({row[0]: Known(*row[1:]) for row in connection.execute(selected)})
    return found


def _needs_update(path: str, known: Known | None, live_text: bool = True) -> bool:
    if known is None:
        return True
    if known.status == "recording":
        # A live recording: look again once its record changed or its recorder is gone, and
        # (unless only catching up quickly) when its cast grew, for the text on screen so far.
        if file_sig(stat_or_none(path)) != known.json_sig or not recorder_alive_at(lock_path_for(path)):
            return True
        return live_text and file_sig(stat_or_none(cast_path_for(path))) != known.cast_sig
    if os.path.abspath(path) != known.json_path:
        return True
    if file_sig(stat_or_none(path)) != known.json_sig:
        return True
    return file_sig(stat_or_none(cast_path_for(path))) != known.cast_sig


def owner_of(spool: str) -> int | None:
    """A personal spool of a shared one (``users/<name>``) holds only its owner's sessions,
    whatever a record there claims; elsewhere the record's own user stands."""
    if os.path.basename(os.path.dirname(os.path.abspath(spool))) != USERS:
        return None
    try:
        return os.stat(spool).st_uid
    except OSError:
        return None


def _day_folders(spools: Iterable[str]) -> list[tuple[str, int | None]]:
    return [(day, owner) for spool in spools for owner in [owner_of(spool)] for day in day_dirs([spool])]


def folder_key(path: str) -> str:
    """How a day folder is named in spool_dirs: host and path, as hosts may share one index."""
    return f"{os.uname().nodename}:{os.path.abspath(path)}"


def _dir_mtime(path: str) -> int | None:
    info = stat_or_none(path)
    return info.st_mtime_ns if info is not None else None


class _Updater:
    """Loads records that changed and stores them a batch at a time; remembers day folders."""

    def __init__(self, engine: sa.Engine, report: Report, dry_run: bool = False,
                 live_text: bool = True) -> None:
        self.engine = engine
        self.report = report
        self.dry_run = dry_run
        self.live_text = live_text
        self.pending: list[Entry] = []
        self.folders: dict[str, int] = {}

    def consider(self, path: str, state: Known | None, owner: int | None) -> None:
        if state is not None and not _needs_update(path, state, self.live_text):
            self.report.unchanged += 1
            return
        if self.dry_run:
            if state is None:
                self.report.new += 1
            else:
                self.report.changed += 1
            return
        entry = _load(path, self.report, owner)
        if entry is None:
            return
        if (
            state is not None
            and entry.json_sig == state.json_sig
            and entry.cast_sig == state.cast_sig
            and entry.record.status == state.status
        ):
            self.report.unchanged += 1  # a live recording with nothing new
            return
        self.pending.append(entry)
        if len(self.pending) >= BATCH:
            self.flush()

    def folder_done(self, path: str, mtime_ns: int | None) -> None:
        """A folder whose records are all considered; remembered unless it changed too recently
        to tell a later change from this one (timestamps are coarser than a nanosecond)."""
        if mtime_ns is not None and time.time_ns() - mtime_ns > RACY_NS:
            self.folders[folder_key(path)] = mtime_ns

    def flush(self) -> None:
        if self.pending:
            _store(self.engine, self.pending, self.report)
            self.pending = []

    def finish(self) -> None:
        self.flush()
        if self.folders and not self.dry_run:
            paths = list(self.folders)
            with writing(self.engine) as connection:
                for part in _chunks(paths):
                    connection.execute(sa.delete(spool_dirs).where(spool_dirs.c.path.in_(part)))
                rows = [{"path": p, "mtime_ns": m} for p, m in self.folders.items()]
                connection.execute(sa.insert(spool_dirs), rows)


def sync(engine: sa.Engine, spools: str | list[str], progress: ProgressFn | None = None) -> Report:
    """Bring the index up to date with every record file in ``spools``.

    New and changed records are (re)indexed, records still ``recording`` are checked for a
    live recorder every time, and rows whose record file is gone are removed. ``progress``
    is called after each day folder with (folders done, folders in all, report so far).
    """
    started = time.monotonic()
    report = Report()
    ensure_schema(engine)
    known = known_sessions(engine, host=this_host())
    seen: set[str] = set()
    updater = _Updater(engine, report)
    folders = _day_folders([spools] if isinstance(spools, str) else spools)
    for number, (day, owner) in enumerate(folders, 1):
        mtime = _dir_mtime(day)
        for path in record_files_in(day):
            session_id = os.path.basename(path)[: -len(".json")]
            seen.add(session_id)
            updater.consider(path, known.get(session_id), owner)
        updater.folder_done(day, mtime)
        if progress:
            progress(number, len(folders), report)
    updater.finish()
    report.removed = _remove_missing(engine, known, seen)
    if report.indexed or report.removed:
        refresh_statistics(engine)
    report.seconds = time.monotonic() - started
    return report


def freshen(engine: sa.Engine, spools: list[str], dry_run: bool = False) -> Report:
    """The cheap catch-up before ``ls``/``search``: only day folders whose mtime moved since
    they were indexed, plus sessions the index still has as ``recording``, are looked at.

    With ``dry_run`` nothing is written: the report counts what is not indexed yet (for a
    caller who may read the index but not write it).
    """
    started = time.monotonic()
    report = Report()
    with engine.connect() as connection:
        stored = dict(connection.execute(sa.select(spool_dirs.c.path, spool_dirs.c.mtime_ns)).tuples().all())
    changed: list[tuple[str, int | None, int | None]] = []
    for day, owner in _day_folders(spools):
        mtime = _dir_mtime(day)
        if mtime is not None and stored.get(folder_key(day)) != mtime:
            changed.append((day, mtime, owner))
    updater = _Updater(engine, report, dry_run, live_text=False)
    live = known_sessions(engine, status="recording", host=this_host())
    live_paths = {k.json_path for k in live.values()}
    for day, mtime, owner in changed:
        paths = record_files_in(day)
        known = known_sessions(engine, [os.path.basename(p)[: -len(".json")] for p in paths])
        for path in paths:
            if os.path.abspath(path) not in live_paths:
                updater.consider(path, known.get(os.path.basename(path)[: -len(".json")]), owner)
        if not dry_run:
            report.removed += _remove_missing_in(engine, day, {os.path.abspath(p) for p in paths})
        updater.folder_done(day, mtime)
    for state in live.values():
        if os.path.exists(state.json_path):
            updater.consider(state.json_path, state, owner_of(_spool_of(state.json_path)))
    updater.finish()
    report.seconds = time.monotonic() - started
    return report


def _spool_of(json_path: str) -> str:
    """The spool a record file is in: four folders up (recordings/YYYY/MM/DD/<id>.json)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(json_path)))))


def _remove_missing_in(engine: sa.Engine, day: str, present: set[str]) -> int:
    """Drop the rows of records that were in folder ``day`` and are gone from it."""
    prefix = os.path.abspath(day) + os.sep
    query = sa.select(index_state.c.session_id, index_state.c.json_path).where(
        index_state.c.json_path >= prefix, index_state.c.json_path < prefix[:-1] + chr(ord(os.sep) + 1),
        index_state.c.host == this_host(),
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
        gone = [i for i, path in rows if path not in present and not os.path.exists(path)]
        gone = [i for i in gone if i not in shipped_ids(connection, gone)]
    if gone:
        with writing(engine) as connection:
            delete_sessions(connection, gone)
    return len(gone)


def refresh_statistics(engine: sa.Engine) -> None:
    """Let SQLite's planner know the table sizes (it picks indexes by them). A sampled
    ANALYZE costs milliseconds; PostgreSQL's autovacuum does this on its own."""
    if engine.dialect.name != "sqlite":
        return
    with writing(engine) as connection:
        connection.exec_driver_sql("PRAGMA analysis_limit = 1000")
        connection.exec_driver_sql("ANALYZE")


def _remove_missing(engine: sa.Engine, known: dict[str, Known], seen: set[str]) -> int:
    """Drop rows whose record file is gone (checked again now: --add may have just added it),
    unless the recording is in the store (shipped, its local copy removed)."""
    gone = [i for i, k in known.items() if i not in seen and not os.path.exists(k.json_path)]
    if gone:
        with engine.connect() as connection:
            kept = shipped_ids(connection, gone)
        gone = [i for i in gone if i not in kept]
    for start in range(0, len(gone), BATCH):
        with writing(engine) as connection:
            delete_sessions(connection, gone[start : start + BATCH])
    return len(gone)


def shipped_ids(connection: sa.Connection, ids: list[str]) -> set[str]:
    """Those of ``ids`` that are verified in the store."""
    return _ids_in(connection, shipments.c.session_id, ids)


KEPT_TABLES = (shipments, holds, deletions)  # not derived from the spool: a rebuild keeps their rows


def drop_all(engine: sa.Engine) -> None:
    """Remove every sshrec table (and the schema version) from the index database."""
    with writing(engine) as connection:
        sqlite = connection.dialect.name == "sqlite"
        names = ["screen_fts", "command_fts"] if sqlite else []
        names += ["screen_text", "session_targets", "session_commands", "index_state", "spool_dirs", "sessions",
                  "shipments", "holds", "deletions", "alembic_version"]
        for name in names:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}" + ("" if sqlite else " CASCADE"))


def rebuild(engine: sa.Engine, spools: str | list[str], progress: ProgressFn | None = None,
            store: Store | None = None) -> Report:
    """Drop the index and recreate every row from the files alone: with ``store``, every
    session in the object store first (:mod:`.bucket_index`), then the local spools.

    Rows come back batch by batch, so until it finishes a concurrent ``ls`` sees part of
    the index; recorders' ``--add`` calls keep working throughout.
    """
    if store is None:
        _refuse_to_drop_other_hosts(engine)
    kept = _kept_rows(engine)
    drop_all(engine)
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # VACUUM must run outside any transaction
        try:
            raw.cursor().execute("VACUUM")
        finally:
            raw.close()
    upgrade(engine, "head")
    if any(kept.values()):
        with writing(engine) as connection:
            for table in KEPT_TABLES:
                if kept[table.name]:
                    connection.execute(sa.insert(table), kept[table.name])
    if store is None:
        return sync(engine, spools, progress)
    from .bucket_index import index_store

    started = time.monotonic()
    from_store = Report()
    index_store(engine, store, from_store, progress)
    report = sync(engine, spools, progress)
    for name in ("new", "changed", "interrupted", "text_bytes"):
        setattr(report, name, getattr(report, name) + getattr(from_store, name))
    for user, count in from_store.new_by_user.items():
        report.new_by_user[user] = report.new_by_user.get(user, 0) + count
    report.failed[:0] = from_store.failed
    report.warnings[:0] = from_store.warnings
    report.seconds = time.monotonic() - started
    return report


def _refuse_to_drop_other_hosts(engine: sa.Engine) -> None:
    """A shared index holds other gateways' sessions, which this host's files cannot bring
    back: rebuilding it from here alone would lose them."""
    try:
        with reading(engine) as connection:
            others = connection.execute(
                sa.select(index_state.c.host, sa.func.count()).where(index_state.c.host != this_host())
                .group_by(index_state.c.host).order_by(index_state.c.host)).all()
    except sa.exc.DBAPIError:
        return  # no index yet (or an unreadable one): nothing of anyone's to keep
    if others:
        hosts = ", ".join(f"{host} ({count})" for host, count in others[:5])
        raise IndexUnusable(f"not rebuilt: this index also holds sessions recorded on other hosts: {hosts}; "
                            "rebuilding from this host's files would drop them. Configure storage "
                            "(storage = \"s3://BUCKET/PREFIX\") to rebuild from the bucket, or run "
                            "sshrec index to catch up without dropping anything")


def _kept_rows(engine: sa.Engine) -> dict[str, list[dict[str, object]]]:
    """The rows of KEPT_TABLES, if the index has them (an index of an older revision has not)."""
    kept: dict[str, list[dict[str, object]]] = {t.name: [] for t in KEPT_TABLES}
    with engine.connect() as connection:
        for table in KEPT_TABLES:
            if connection.dialect.has_table(connection, table.name):
                kept[table.name] = [dict(row._mapping) for row in connection.execute(sa.select(table))]
    return kept
