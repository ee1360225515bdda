"""``sshrec ship``: finished recordings from this host's spool to object storage.

Each session goes up as its files under stable keys (:mod:`.storage.keys`): the cast, the
collector's chain when there is one, the seek index, and the record last, so a session whose
record is in the store has everything else there too (a rebuild from the bucket reads
records). Every object is verified (size and SHA-256, see :mod:`.storage.s3`) before the
session is marked shipped in the index.

Idempotent and resumable: an object already stored with the same SHA-256 is not sent again
(so a second run adds no versions), a single PUT is atomic and a multipart upload becomes
visible only when completed (one a crash left is aborted by the next attempt). The store
unreachable: the run stops, says so, and nothing changes locally; the next run sends what
is left.

After a verified upload the local copy stays for ``keep_local`` days after the session
ended (never removed when it is None); a local file that no longer matches what was
shipped is kept and named.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import sqlalchemy as sa

from .db import ensure_schema, writing
from .entry import cast_path_for, lock_path_for
from .index import SQL_CHUNK, this_host
from .record import iso_utc
from .spool import recorder_alive_at
from .storage import StorageError, Store, StoreUnreachable, StoreUnusable
from .storage import keys as k
from .tables import holds, index_state, parse_timestamp, sessions, shipments

SESSIONS_AT_ONCE = 4
INTERRUPTED_QUIET_S = 300  # an interrupted session (recorder gone) ships once its cast is this still
SeekWriter = Callable[[str, str], None]  # (cast path, output path): writes the seek index JSON


@dataclass
class ShipReport:
    """What one run did. ``pending``: sessions left for the next run (the store was down)."""

    shipped: int = 0
    already: int = 0
    bytes: int = 0
    objects: int = 0
    removed_local: int = 0
    pending: int = 0
    verified_by: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: ShipReport) -> None:
        for name in ("shipped", "already", "bytes", "objects", "removed_local", "pending"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for how, count in other.verified_by.items():
            self.verified_by[how] = self.verified_by.get(how, 0) + count
        self.failed.extend(other.failed)
        self.warnings.extend(other.warnings)

    def summary(self) -> str:
        parts = [f"{self.shipped} shipped ({self.bytes / 1e6:.1f} MB)", f"{self.already} already there"]
        if self.removed_local:
            parts.append(f"{self.removed_local} local copies removed")
        if self.pending:
            parts.append(f"{self.pending} left for the next run")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return f"{', '.join(parts)} in {self.seconds:.2f} s"


@dataclass
class Candidate:
    session_id: str
    json_path: str
    host: str
    status: str


def candidates(engine: sa.Engine, host: str, ids: Iterable[str] | None = None) -> list[Candidate]:
    """This host's finished sessions that are not in the store yet, oldest first."""
    query = (
        sa.select(index_state.c.session_id, index_state.c.json_path, sessions.c.host, sessions.c.status)
        .join(sessions, sessions.c.id == index_state.c.session_id)
        .outerjoin(shipments, shipments.c.session_id == index_state.c.session_id)
        .where(index_state.c.host == host, shipments.c.session_id.is_(None), sessions.c.status != "recording")
        .order_by(index_state.c.session_id)
    )
    if ids is not None:
        query = query.where(index_state.c.session_id.in_(list(ids)))
    with engine.connect() as connection:
        return [Candidate(*row) for row in connection.execute(query)]


def held_ids(connection: sa.Connection, ids: list[str]) -> set[str]:
    """Those of ``ids`` under an unreleased legal hold."""
    found: set[str] = set()
    for start in range(0, len(ids), SQL_CHUNK):
        part = ids[start : start + SQL_CHUNK]
        query = sa.select(holds.c.session_id).where(holds.c.session_id.in_(part), holds.c.released_at.is_(None))
        found.update(connection.execute(query).scalars())
    return found


def file_digest(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class Shipper:
    """Ships sessions of one host to one store and records each in the index."""

    def __init__(self, engine: sa.Engine, store: Store, seek_writer: SeekWriter | None = None,
                 host: str | None = None) -> None:
        self.engine = engine
        self.store = store
        self.seek_writer = seek_writer
        self.host = host or this_host()
        self._lock_checked: bool | None = None

    def run(self, report: ShipReport, ids: Iterable[str] | None = None) -> None:
        """Ship the candidates, SESSIONS_AT_ONCE at a time (hashing, the seek index and the
        requests of one overlap another's); the store down or refusing: stop, say it once."""
        todo = candidates(self.engine, self.host, ids)
        with self.engine.connect() as connection:
            held = held_ids(connection, [c.session_id for c in todo]) if todo else set()
        lock = threading.Lock()
        stop = threading.Event()

        def one(candidate: Candidate) -> None:
            part = ShipReport()
            if stop.is_set():
                part.pending = 1
            else:
                try:
                    self.ship_one(candidate, candidate.session_id in held, part)
                except (StoreUnreachable, StoreUnusable) as exc:  # every other session would fail the same way
                    part.pending = 1
                    with lock:
                        if not stop.is_set():
                            part.failed.append(str(exc))
                        stop.set()
                except StorageError as exc:
                    part.failed.append(f"{candidate.session_id}: {exc}")
                except OSError as exc:
                    where = exc.filename or candidate.json_path
                    part.failed.append(f"{where}: {exc.strerror} (left in the spool)")
            with lock:
                report.merge(part)

        with ThreadPoolExecutor(SESSIONS_AT_ONCE, thread_name_prefix="sshrec-ship") as pool:
            list(pool.map(one, todo))

    def ship_one(self, candidate: Candidate, held: bool, report: ShipReport) -> None:
        json_path = candidate.json_path
        with open(json_path, "rb") as handle:
            record_bytes = handle.read()
        record = json.loads(record_bytes)
        if record.get("status") == "recording" and not self._quiet(json_path):
            return  # interrupted only as far as the index can tell yet: ship it on a later run
        cast = cast_path_for(json_path)
        stem = k.session_stem(self.store.prefix, candidate.host or str(record.get("host") or ""),
                              candidate.session_id)
        files: list[tuple[str, str]] = []
        if os.path.exists(cast):
            files.append((k.CAST, cast))
        chain = json_path[: -len(".json")] + ".chain"
        if os.path.exists(chain):
            files.append((k.CHAIN, chain))
        with tempfile.TemporaryDirectory(prefix="sshrec-ship-") as work:
            if self.seek_writer is not None and os.path.exists(cast):
                seek = os.path.join(work, "seek.json")
                try:
                    self.seek_writer(cast, seek)
                    files.append((k.SEEK, seek))
                except (OSError, ValueError) as exc:
                    report.warnings.append(f"{cast}: no seek index shipped ({exc}); play seeks read more")
            record_copy = os.path.join(work, "record.json")
            with open(record_copy, "wb") as handle:  # exactly the bytes read above, uploaded last
                handle.write(record_bytes)
            files.append((k.RECORD, record_copy))
            objects: dict[str, str] = {}
            digests: dict[str, tuple[str, int]] = {}
            methods: dict[str, str] = {}
            for suffix, path in files:
                digest, size = file_digest(path)
                key = stem + suffix
                digests[suffix] = (digest, size)
                objects[suffix] = key
                found = self.store.stat(key)
                if found is not None and found.size == size and found.sha256 == digest:
                    methods[suffix] = "present"  # stored by an earlier, verified upload
                else:
                    _, methods[suffix] = self.store.put_file(key, path, digest, size,
                                                             {"session-id": candidate.session_id})
                    report.bytes += size
                    report.objects += 1
                if held and self.store_locks():
                    self.store.set_legal_hold(key, True)
        if k.CAST in digests and record.get("sha256") and record["sha256"] != digests[k.CAST][0]:
            report.warnings.append(f"{cast}: does not match the SHA-256 in its record (changed after it was "
                                   "recorded?); shipped as it is, sshrec verify will say so")
        how = methods.get(k.CAST, methods[k.RECORD])
        report.verified_by[how] = report.verified_by.get(how, 0) + 1
        self._mark(candidate, objects, digests, how, held and self.store_locks())
        if set(methods.values()) == {"present"}:
            report.already += 1
        else:
            report.shipped += 1

    def store_locks(self) -> bool:
        """Whether the store enforces legal holds (asked once per run)."""
        if self._lock_checked is None:
            self._lock_checked = self.store.object_lock() is None
        return self._lock_checked

    def _quiet(self, json_path: str) -> bool:
        """A session still "recording" in its record ships only when its recorder is gone and its
        cast has not grown for a while (the collector may still finish it after a restart)."""
        if recorder_alive_at(lock_path_for(json_path)):
            return False
        try:
            changed = os.stat(cast_path_for(json_path)).st_mtime
        except FileNotFoundError:
            changed = os.stat(json_path).st_mtime
        return time.time() - changed > INTERRUPTED_QUIET_S

    def _mark(self, candidate: Candidate, objects: dict[str, str], digests: dict[str, tuple[str, int]],
              how: str, locked: bool) -> None:
        """The session is in the store: its shipments row (and, for a session held before it was
        shipped, the note that the store now enforces the hold)."""
        cast_sha, cast_size = digests.get(k.CAST, ("", 0))
        row = {
            "session_id": candidate.session_id, "host": self.host, "store": self.store.url,
            "cast_key": objects.get(k.CAST, ""), "cast_size": cast_size, "cast_sha256": cast_sha,
            "record_key": objects[k.RECORD], "record_sha256": digests[k.RECORD][0], "objects": objects,
            "verified_by": how, "shipped_at": iso_utc(time.time()), "local_removed_at": None,
        }
        with writing(self.engine) as connection:
            connection.execute(sa.delete(shipments).where(shipments.c.session_id == candidate.session_id))
            connection.execute(sa.insert(shipments), [row])
            if locked:
                connection.execute(sa.update(holds).where(holds.c.session_id == candidate.session_id,
                                                          holds.c.released_at.is_(None)).values(store_lock=True))

    def remove_local(self, keep_days: int, report: ShipReport, now: float | None = None) -> None:
        """Remove local copies of shipped sessions that ended ``keep_days`` ago or more."""
        now = time.time() if now is None else now
        query = (
            sa.select(shipments.c.session_id, shipments.c.cast_key, shipments.c.cast_sha256,
                      shipments.c.record_key, shipments.c.record_sha256, index_state.c.json_path,
                      sessions.c.ended_at, sessions.c.started_at)
            .join(index_state, index_state.c.session_id == shipments.c.session_id)
            .join(sessions, sessions.c.id == shipments.c.session_id)
            .where(shipments.c.host == self.host, shipments.c.local_removed_at.is_(None))
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        for session_id, cast_key, cast_sha, record_key, record_sha, json_path, ended, started in rows:
            when = ended or started
            if when and parse_timestamp(when).timestamp() > now - keep_days * 86400:
                continue
            if not self._same_as_shipped(json_path, cast_sha, record_sha, report):
                continue
            for path in (cast_path_for(json_path), json_path[: -len(".json")] + ".chain", json_path,
                         lock_path_for(json_path)):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            self._point_to_store(session_id, cast_key, record_key)
            report.removed_local += 1

    def _same_as_shipped(self, json_path: str, cast_sha: str, record_sha: str, report: ShipReport) -> bool:
        if not os.path.exists(json_path):
            return True  # already gone: just note it
        cast = cast_path_for(json_path)
        for path, expected in ((json_path, record_sha), (cast, cast_sha)):
            if expected and os.path.exists(path) and file_digest(path)[0] != expected:
                report.warnings.append(f"{path}: changed since it was shipped; the local copy is kept "
                                       "(compare it with the store: sshrec verify)")
                return False
        return True

    def _point_to_store(self, session_id: str, cast_key: str, record_key: str) -> None:
        with writing(self.engine) as connection:
            connection.execute(sa.update(shipments).where(shipments.c.session_id == session_id)
                               .values(local_removed_at=iso_utc(time.time())))
            if cast_key:
                connection.execute(sa.update(sessions).where(sessions.c.id == session_id)
                                   .values(path=self.store.describe(cast_key)))
            connection.execute(sa.update(index_state).where(index_state.c.session_id == session_id)
                               .values(json_path=self.store.describe(record_key)))


def ship(engine: sa.Engine, store: Store, keep_local: int | None = None, seek_writer: SeekWriter | None = None,
         ids: Iterable[str] | None = None, host: str | None = None) -> ShipReport:
    """Ship this host's finished sessions (those ``ids`` only, when given)."""
    started = time.monotonic()
    report = ShipReport()
    ensure_schema(engine)
    shipper = Shipper(engine, store, seek_writer, host)
    shipper.run(report, ids)
    if keep_local is not None and not report.pending:
        shipper.remove_local(keep_local, report)
    report.seconds = time.monotonic() - started
    return report
