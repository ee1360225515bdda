"""Turn what an auditor types (a session id or a file path) into a cast file, without the index.

A session id encodes its start time, so its path in each spool is known: no SQL needed to
open it. A file the caller may not read is "not permitted", never "no such file".
"""

from __future__ import annotations

import errno
import os
from typing import Any

from sshrec.schema import spool
from sshrec.schema.record import is_session_id


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


def locate_cast(target: str, settings: Any) -> str:
    """The cast of ``target`` (a .cast or .json file, or a session id in the spools ``settings``
    lets the caller read)."""
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
        if settings.shared and not settings.admin:
            raise NotFound(f"session {target} is not among your recordings in {settings.spool} "
                           "(other users' sessions are readable by root only)")
        looked = spool.cast_path(spools[0], target.upper())
        raise NotFound(f"session {target} is not in the spool {settings.home} (looked for {looked})")
    raise NotFound(f"{target}: no such file, and not a session id (26 characters, e.g. 01J...)")


def cast_of(record: dict[str, object], settings: Any) -> str:
    """The recording of an index row: its ``path`` when that file is there, else where the
    spools keep that id (the index may have been built on another mount). NotFound if neither."""
    path = str(record.get("path") or "")
    if path and _exists(path):
        return path
    found = spool.find_session_files(settings.read_spools(), str(record["id"]))
    if found is None:
        raise NotFound(f"session {record['id']} is in the index but its recording {path or '(no path)'} "
                       "is missing; run: sshrec index --rebuild")
    return found
