"""``sshrec retention``: delete recordings past the policy, except those under legal hold.

A session is deleted when every copy of it can be reached from here: its objects in the
store (when shipped) and its local files (when they are on this host). One whose local copy
is on another host is left for that host's own run. Each deletion is logged first: a row of
``deletions`` and, with a store, an object under ``PREFIX/_sshrec/deletions/`` (what was
deleted, its SHA-256, why, by whom), then the objects, the files and the index rows go. A
deleted session id is never indexed again.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa

from .db import ensure_schema, writing
from .entry import cast_path_for, lock_path_for
from .index import delete_sessions, this_host
from .record import iso_utc
from .storage import StorageError, Store
from .storage import keys as k
from .tables import deletions, holds, index_state, parse_timestamp, sessions, shipments

_AGE = re.compile(r"(\d+)\s*([hdwy])", re.IGNORECASE)
_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


class RetentionError(ValueError):
    """A policy that cannot be applied; the message says what to give instead."""


def parse_age(text: str) -> float:
    """``365d``, ``52w``, ``1y``, ``36h`` (combinations too: ``1y30d``) in seconds."""
    pieces = _AGE.findall(text)
    if not pieces or _AGE.sub("", text).strip():
        raise RetentionError(f"--older-than {text!r}: give an age such as 365d, 52w, 1y or 1y30d")
    return float(sum(int(n) * _UNITS[u.lower()] for n, u in pieces))


@dataclass
class Doomed:
    """A session past the policy, with where its copies are."""

    session_id: str
    host: str
    user: str
    started_at: str | None
    sha256: str | None
    json_path: str | None
    objects: dict[str, str] = field(default_factory=dict)
    local_removed: bool = False

    @property
    def local_here(self) -> bool:
        return bool(self.json_path) and not self.local_removed and not str(self.json_path).startswith(
            ("s3://", "file://"))


@dataclass
class RetentionReport:
    deleted: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def past_policy(engine: sa.Engine, older_than: float, now: float | None = None
                ) -> tuple[list[Doomed], list[str]]:
    """(sessions to delete, ids held back by a legal hold): started before now - older_than."""
    cutoff = iso_utc((time.time() if now is None else now) - older_than)
    held = sa.select(holds.c.session_id).where(holds.c.released_at.is_(None))
    query = (
        sa.select(sessions.c.id, index_state.c.host, sessions.c.user, sessions.c.started_at, sessions.c.sha256,
                  index_state.c.json_path, shipments.c.objects, shipments.c.local_removed_at,
                  sessions.c.id.in_(held).label("held"))
        .outerjoin(index_state, index_state.c.session_id == sessions.c.id)
        .outerjoin(shipments, shipments.c.session_id == sessions.c.id)
        .where(sessions.c.started_at < parse_timestamp(cutoff), sessions.c.status != "recording")
        .order_by(sessions.c.started_at)
    )
    doomed, kept = [], []
    with engine.connect() as connection:
        for row in connection.execute(query):
            if row.held:
                kept.append(row.id)
                continue
            doomed.append(Doomed(row.id, row.host or "", row.user, row.started_at, row.sha256, row.json_path,
                                 dict(row.objects or {}), row.local_removed_at is not None))
    return doomed, kept


def apply(engine: sa.Engine, older_than: float, reason: str, by: str, store: Store | None = None,
          dry_run: bool = False, now: float | None = None) -> RetentionReport:
    ensure_schema(engine)
    report = RetentionReport(dry_run=dry_run)
    doomed, report.held = past_policy(engine, older_than, now)
    here = this_host()
    for item in doomed:
        if item.local_here and item.host != here:
            report.elsewhere.append(f"{item.session_id}: its local copy is on host {item.host}; "
                                    "run sshrec retention there")
            continue
        if item.objects and store is None:
            report.failed.append(f"{item.session_id}: shipped to a store, but no storage is configured here")
            continue
        if dry_run:
            report.deleted.append(item.session_id)
            continue
        try:
            delete_one(engine, item, reason, by, store)
            report.deleted.append(item.session_id)
        except (StorageError, OSError, sa.exc.DBAPIError) as exc:
            report.failed.append(f"{item.session_id}: {exc}")
    return report


def delete_one(engine: sa.Engine, item: Doomed, reason: str, by: str, store: Store | None) -> None:
    """Log, then delete the objects, the local files and the rows of one session."""
    now = time.time()
    local = [p for p in _local_files(item) if os.path.exists(p)]
    entry = {"session_id": item.session_id, "host": item.host, "user": item.user, "started_at": item.started_at,
             "sha256": item.sha256, "reason": reason, "deleted_by": by, "deleted_at": iso_utc(now),
             "objects": item.objects, "local_files": local}
    log_key = None
    if store is not None:
        log_key = k.deletion_log_key(store.prefix, item.session_id, now)
        store.put_bytes(log_key, json.dumps({**entry, "store": store.url}, indent=1).encode())
    with writing(engine) as connection:
        connection.execute(sa.insert(deletions).values(**entry, log_key=log_key))
    if store is not None:
        for key in item.objects.values():
            store.delete(key)
    for path in local:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    with writing(engine) as connection:
        delete_sessions(connection, [item.session_id])
        connection.execute(sa.delete(shipments).where(shipments.c.session_id == item.session_id))


def _local_files(item: Doomed) -> list[str]:
    if not item.local_here or not item.json_path:
        return []
    stem = item.json_path[: -len(".json")]
    return [cast_path_for(item.json_path), stem + ".chain", item.json_path, lock_path_for(item.json_path)]


def restore_log(engine: sa.Engine, store: Store) -> int:
    """Deletions logged in the store that the index lacks (after a rebuild from the bucket)."""
    with engine.connect() as connection:
        have = set(connection.execute(sa.select(deletions.c.session_id)).scalars())
    rows = []
    for key, entry in k.internal_objects(store, "deletions"):
        if entry.get("session_id") not in have:
            entry.pop("store", None)
            rows.append({**entry, "log_key": key})
            have.add(entry["session_id"])
    if rows:
        with writing(engine) as connection:
            connection.execute(sa.insert(deletions), rows)
    return len(rows)
