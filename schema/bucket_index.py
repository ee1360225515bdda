"""``sshrec index --rebuild`` from the bucket alone: every session whose record is in the store.

Objects are listed once and grouped by session; for each, the record is read, the cast's
HEAD gives its SHA-256 (set when it was shipped) and the cast is streamed once for its
screen text, a few sessions at a time. Rows name the host from the key, point ``path`` at
the stored cast, and get a ``shipments`` row, so ``ls``, ``search``, ``play`` and retention
work as before. The deletion log and the holds kept in the store come back first, so a
deleted session stays deleted and a held one stays held.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from .db import writing
from .entry import PROTOCOL_MODES, Entry, RecordError, _clean, mark_interrupted, summarize_cast
from .holds import restore_from_store
from .index import ProgressFn, Report, _store
from .record import SessionRecord, iso_utc
from .retention import restore_log
from .storage import ObjectInfo, StorageError, Store
from .storage import keys as k
from .tables import shipments

WORKERS = 8
BATCH = 200


def group_objects(store: Store) -> dict[tuple[str, str], dict[str, ObjectInfo]]:
    """(host, session id) -> suffix -> object, for every session object under the prefix."""
    groups: dict[tuple[str, str], dict[str, ObjectInfo]] = {}
    for info in store.list(store.prefix + "/" if store.prefix else ""):
        parsed = k.parse_key(store.prefix, info.key)
        if parsed is not None:
            host, session_id, suffix = parsed
            groups.setdefault((host, session_id), {})[suffix] = info
    return groups


def load_stored(store: Store, host: str, session_id: str, objects: dict[str, ObjectInfo]
                ) -> tuple[Entry, dict[str, object]]:
    """The index entry and the shipments row of one stored session."""
    record_info = objects[k.RECORD]
    raw = store.read(record_info.key)
    try:
        record = _clean(SessionRecord.from_dict(json.loads(raw)), f"{session_id}.json")
    except (ValueError, TypeError, RecordError) as exc:
        raise RecordError(f"{store.describe(record_info.key)}: not a session record: {exc}") from None
    cast = objects.get(k.CAST)
    cast_head = store.stat(cast.key) if cast is not None else None
    summary = summarize_cast(store.blob(cast.key), sizes=record.status == "recording",
                             text=record.mode not in PROTOCOL_MODES) if cast is not None else None
    if summary is not None and record.status == "recording":  # shipped only once its recorder was gone
        mark_interrupted(record, summary, "", cast_head.sha256 if cast_head else None)
    if summary is not None and summary.text_note:
        record.notes.append(summary.text_note)
    if cast is not None:
        record.path = store.describe(cast.key)
    owner = record.host if k.host_part(record.host) == host else host
    entry = Entry(record=record, chunks=summary.chunks if summary else [],
                  json_path=store.describe(record_info.key),
                  json_sig=f"store:{record_info.etag}:{record_info.size}",
                  json_mtime_ns=0, cast_sig=f"store:{cast.etag}:{cast.size}" if cast else "",
                  problem=summary.problem if summary else "cast is not in the store",
                  text_bytes=summary.text_bytes if summary else 0, host=owner)
    shipment = {
        "session_id": session_id, "host": owner, "store": store.url, "cast_key": cast.key if cast else "",
        "cast_size": cast.size if cast else 0, "cast_sha256": (cast_head.sha256 or "") if cast_head else "",
        "record_key": record_info.key, "record_sha256": hashlib.sha256(raw).hexdigest(),
        "objects": {suffix: info.key for suffix, info in objects.items()}, "verified_by": "rebuilt",
        "shipped_at": iso_utc(time.time()), "local_removed_at": None,
    }
    return entry, shipment


Group = tuple[tuple[str, str], dict[str, ObjectInfo]]


def index_store(engine: sa.Engine, store: Store, report: Report, progress: ProgressFn | None = None) -> None:
    """Add every stored session to the (freshly rebuilt) index."""
    restore_log(engine, store)
    restore_from_store(engine, store)
    groups = [(key, objs) for key, objs in sorted(group_objects(store).items()) if k.RECORD in objs]
    done = 0

    def load(item: Group) -> tuple[Entry, dict[str, object]] | str:
        (host, session_id), objects = item
        try:
            return load_stored(store, host, session_id, objects)
        except (RecordError, StorageError, OSError) as exc:
            return str(exc)

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="sshrec-rebuild") as pool:
        for start in range(0, len(groups), BATCH):
            batch = groups[start : start + BATCH]
            loaded = list(pool.map(load, batch))
            report.failed.extend(x for x in loaded if isinstance(x, str))
            pairs = [x for x in loaded if not isinstance(x, str)]
            _store(engine, [e for e, _ in pairs], report)
            with writing(engine) as connection:
                ids = [s["session_id"] for _, s in pairs]
                connection.execute(sa.delete(shipments).where(shipments.c.session_id.in_(ids)))
                if pairs:
                    connection.execute(sa.insert(shipments), [s for _, s in pairs])
            done += len(batch)
            if progress is not None:
                progress(done, len(groups), report)
