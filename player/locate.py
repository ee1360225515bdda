"""Turn what an auditor types (a session id or a file path) into a cast file, without the index.

A session id encodes its start time, so its path in each spool is known: no SQL needed to
open it. A file the caller may not read is "not permitted", never "no such file". A session
that is not in the spool (shipped, its local copy removed, or recorded on another host) is
looked for in the configured store (``storage``), and returned as a
:class:`~sshrec.schema.storage.Blob` that every reader takes in place of a path.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from sshrec.schema import spool
from sshrec.schema.record import is_session_id
from sshrec.schema.storage import Blob, StorageError


class NotFound(Exception):
    """Nothing matches; the message says where sshrec looked."""


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except PermissionError:
        raise NotFound(f"not permitted: {path} belongs to another user") from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            return False
        raise
    return True


def locate_cast(target: str, settings: Any) -> str | Blob:
    """The cast of ``target``: a .cast or .json file, a session id in the spools ``settings``
    lets the caller read or in the configured store, or a stored object's URL."""
    if target.startswith(("s3://", "file://")):
        return _stored_url(target, settings)
    if _exists(target):
        if os.path.isdir(target):
            raise NotFound(f"{target} is a directory, not a recording")
        if target.endswith(".json"):
            cast = target[: -len(".json")] + ".cast"
            if _exists(cast):
                return cast
        if not os.access(target, os.R_OK):
            raise NotFound(f"not permitted: {target} is readable only by its owner")
        return target
    if is_session_id(target):
        spools = settings.read_spools()
        path = spool.find_session_files(spools, target.upper())
        if path is not None:
            return path
        stored = _stored_session(target.upper(), settings)
        if stored is not None:
            return stored
        if settings.shared and not settings.admin:
            raise NotFound(f"session {target} is not among your recordings in {settings.spool} "
                           "(other users' sessions are readable by root only)")
        looked = spool.cast_path(spools[0], target.upper())
        also = f" nor in {settings.storage}" if getattr(settings, "storage", None) else ""
        raise NotFound(f"session {target} is not in the spool {settings.home} (looked for {looked}){also}")
    raise NotFound(f"{target}: no such file, and not a session id (26 characters, e.g. 01J...)")


def _stored_session(session_id: str, settings: Any) -> Blob | None:
    from .stored import find_stored, store_of

    try:
        store = store_of(settings)
        return find_stored(session_id, settings, store) if store is not None else None
    except StorageError as exc:
        raise NotFound(f"session {session_id} is not in the spool, and the store cannot be read: {exc}"
                       ) from None


def _stored_url(target: str, settings: Any) -> Blob:
    from .stored import blob_for_url, store_of

    try:
        store = store_of(settings)
        blob = blob_for_url(target, store) if store is not None else None
        if blob is None:
            configured = getattr(settings, "storage", None) or "none"
            raise NotFound(f"{target} is not in the configured store ({configured}: "
                           "set storage = \"s3://BUCKET/PREFIX\" in the config)")
        if blob.stat() is None:
            raise NotFound(f"{target}: no such object")
        return blob
    except StorageError as exc:
        raise NotFound(str(exc)) from None


def cast_of(record: dict[str, object], settings: Any) -> str | Blob:
    """The recording of an index row: its ``path`` when that file is there, else where the
    spools keep that id (the index may have been built on another mount), else the store's
    copy. NotFound if none."""
    path = str(record.get("path") or "")
    if path and _exists(path):
        return path
    session_id = str(record["id"])
    found = spool.find_session_files(settings.read_spools(), session_id)
    if found is not None:
        return found
    stored = _stored_session(session_id, settings)
    if stored is None:
        raise NotFound(f"session {session_id} is in the index but its recording {path or '(no path)'} "
                       "is missing; run: sshrec index --rebuild")
    return stored
