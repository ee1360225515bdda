"""Finding a session in object storage, for an auditor who has only the config.

The index knows where each shipped session is (``shipments``); without a row there (an index
still being rebuilt, or none at all), each host folder under the store's prefix is asked for
the session's key, which the id alone determines but for the host (:mod:`schema.storage.keys`).
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
    """The stored cast of ``session_id``: from the index, else by asking each host folder."""
    key = _key_from_index(session_id, settings)
    if key:
        return store.blob(key)
    for host in store.folders(store.prefix):
        if host.startswith("_"):
            continue
        candidate = k.session_key(store.prefix, host, session_id, k.CAST)
        if store.stat(candidate) is not None:
            return store.blob(candidate)
    return None


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
