"""Legal holds: a session under hold is never deleted by retention.

A hold is a row of ``holds`` (reason, who, when; released explicitly, never deleted), and,
when the session is in a store with object lock, the store's own legal hold on each of its
objects, so not even a delete outside sshrec removes it. A marker object per held session
(``PREFIX/_sshrec/holds/ID.json``) carries the holds through an index rebuilt from the bucket.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from .db import ensure_schema, writing
from .record import iso_utc
from .storage import Store
from .storage import keys as k
from .tables import holds, sessions, shipments


class HoldError(ValueError):
    """A hold that cannot be placed or released; the message says why."""


@dataclass
class Hold:
    id: int
    session_id: str
    reason: str
    held_by: str
    held_at: str
    store_lock: bool
    released_at: str | None = None
    released_by: str | None = None
    release_reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _hold(row: sa.Row) -> Hold:
    m = row._mapping
    return Hold(m["pk"], m["session_id"], m["reason"], m["held_by"], m["held_at"], bool(m["store_lock"]),
                m["released_at"], m["released_by"], m["release_reason"])


def list_holds(engine: sa.Engine, include_released: bool = False,
               session_ids: list[str] | None = None) -> list[Hold]:
    query = sa.select(holds).order_by(holds.c.pk)
    if not include_released:
        query = query.where(holds.c.released_at.is_(None))
    if session_ids is not None:
        query = query.where(holds.c.session_id.in_(session_ids))
    with engine.connect() as connection:
        return [_hold(row) for row in connection.execute(query)]


def _objects(connection: sa.Connection, session_id: str) -> list[str]:
    query = sa.select(shipments.c.objects).where(shipments.c.session_id == session_id)
    found = connection.execute(query).scalar()
    return list((found or {}).values())


def place(engine: sa.Engine, session_ids: list[str], reason: str, by: str, store: Store | None = None
          ) -> tuple[list[Hold], list[str]]:
    """Hold ``session_ids`` for ``reason``; returns the holds and notes (e.g. no object lock)."""
    if not reason.strip():
        raise HoldError("a hold needs a reason (--reason 'case 4711, legal')")
    ensure_schema(engine)
    notes: list[str] = []
    lock_problem = store.object_lock() if store is not None else "no storage configured"
    if store is not None and lock_problem:
        notes.append(lock_problem)
    with engine.connect() as connection:
        query = sa.select(sessions.c.id).where(sessions.c.id.in_(session_ids))
        known = set(connection.execute(query).scalars())
        objects = {i: _objects(connection, i) for i in session_ids}
    missing = [i for i in session_ids if i not in known]
    if missing:
        raise HoldError(f"not in the index: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                        "(run sshrec index first, or check the id)")
    locked: dict[str, bool] = {}
    for session_id in session_ids:
        locked[session_id] = False
        if store is not None and not lock_problem and objects[session_id]:
            for key in objects[session_id]:
                store.set_legal_hold(key, True)
            locked[session_id] = True
    now = iso_utc(time.time())
    with writing(engine) as connection:
        for session_id in session_ids:
            connection.execute(sa.insert(holds).values(session_id=session_id, reason=reason, held_by=by,
                                                       held_at=now, store_lock=locked[session_id]))
    placed = [h for h in list_holds(engine, session_ids=session_ids) if h.held_at == now and h.reason == reason]
    if store is not None:
        for session_id in session_ids:
            write_marker(engine, store, session_id)
    return placed, notes


def release(engine: sa.Engine, targets: list[str], by: str, reason: str, store: Store | None = None
            ) -> list[Hold]:
    """Release holds: each target is a hold id (a number) or a session id (all its holds). The
    store's legal hold is switched off once a session has no hold left."""
    hold_ids = [int(t) for t in targets if t.isdigit()]
    session_ids = [t.upper() for t in targets if not t.isdigit()]
    active = [h for h in list_holds(engine) if h.id in hold_ids or h.session_id in session_ids]
    if not active:
        raise HoldError(f"no active hold matches {', '.join(targets)} (see: sshrec hold --list)")
    now = iso_utc(time.time())
    with writing(engine) as connection:
        connection.execute(sa.update(holds).where(holds.c.pk.in_([h.id for h in active]))
                           .values(released_at=now, released_by=by, release_reason=reason or None))
    still = {h.session_id for h in list_holds(engine, session_ids=[h.session_id for h in active])}
    for session_id in {h.session_id for h in active} - still:
        if store is not None:
            with engine.connect() as connection:
                keys = _objects(connection, session_id)
            if store.object_lock() is None:
                for key in keys:
                    store.set_legal_hold(key, False)
    if store is not None:
        for session_id in {h.session_id for h in active}:
            write_marker(engine, store, session_id)
    return [h for h in list_holds(engine, include_released=True) if h.id in {a.id for a in active}]


def write_marker(engine: sa.Engine, store: Store, session_id: str) -> None:
    """The session's holds (active and released) as an object, or none when it never had one."""
    every = list_holds(engine, include_released=True, session_ids=[session_id])
    key = k.hold_key(store.prefix, session_id)
    if every:
        store.put_bytes(key, json.dumps([h.to_dict() for h in every], indent=1).encode())
    else:
        store.delete(key)


def restore_from_store(engine: sa.Engine, store: Store) -> int:
    """Holds recorded in the store's markers that the index lacks (after a rebuild)."""
    with engine.connect() as connection:
        have = {(r.session_id, r.reason, r.held_at) for r in connection.execute(sa.select(holds))}
    rows = []
    for _, items in k.internal_objects(store, "holds"):
        for item in items:
            if (item["session_id"], item["reason"], item["held_at"]) not in have:
                rows.append({name: item[name] for name in ("session_id", "reason", "held_by", "held_at",
                                                           "store_lock", "released_at", "released_by",
                                                           "release_reason")})
    if rows:
        with writing(engine) as connection:
            connection.execute(sa.insert(holds), rows)
    return len(rows)
