"""Finding a session in object storage, for an auditor who has only the config.

The id determines a session's key but for the host (:mod:`schema.storage.keys`), so each
host folder under the store's prefix is asked for it, all at once (one LIST and a HEAD per
host, no SQL: SQLAlchemy's import would double the time to the first frame); a store with a
layout this does not find is looked up in the index (``shipments``).
"""

from __future__ import annotations

from typing import Any

from sshrec.schema.storage import Blob, StorageError, Store, open_store
from sshrec.schema.storage import keys as k


def store_of(settings: Any) -> Store | None:
    """The configured store, or None when ``storage`` is not set."""
    if not getattr(settings, "storage", None):
        return None
    return open_store(settings.storage, settings.s3_endpoint_url)


def blob_for_url(target: str, store: Store) -> Blob | None:
    """``s3://BUCKET/KEY`` (or ``file:///...``) inside the configured store as a Blob."""
    base = store.describe("")
    if not target.startswith(base):
        return None
    key = target[len(base):]
    if key.endswith(k.RECORD) and not key.endswith(k.SEEK):
        key = key[: -len(k.RECORD)] + k.CAST
    return store.blob(key)


def find_stored(session_id: str, settings: Any, store: Store) -> Blob | None:
    """The stored cast of ``session_id``: by asking each host folder, else from the index."""
    from concurrent.futures import ThreadPoolExecutor

    candidates = [k.session_key(store.prefix, host, session_id, k.CAST)
                  for host in store.folders(store.prefix) if not host.startswith("_")]
    if candidates:
        with ThreadPoolExecutor(min(len(candidates), 16)) as pool:
            for key, info in zip(candidates, pool.map(store.stat, candidates), strict=True):
                if info is not None:
                    return store.blob(key)
    key = _key_from_index(session_id, settings)
    return store.blob(key) if key else None


def _key_from_index(session_id: str, settings: Any) -> str | None:
    try:
        import sqlalchemy as sa
        from sshrec.schema.db import IndexUnusable, open_engine
        from sshrec.schema.tables import shipments
    except ImportError:
        return None
    try:
        engine = open_engine(settings.db_url)
    except IndexUnusable:
        return None
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.select(shipments.c.cast_key).where(shipments.c.session_id == session_id)).scalar()
    except sa.exc.DBAPIError:
        return None  # no index yet, or one before revision 0006
    finally:
        engine.dispose()


__all__ = ["StorageError", "blob_for_url", "find_stored", "store_of"]
