"""Turn what an auditor types (a session id or a file path) into a cast file, without the index.

A session id encodes its start time, so its spool path is known: no SQL needed to open it.
"""

from __future__ import annotations

import os

from sshrec.schema import spool
from sshrec.schema.record import is_session_id


class NotFound(Exception):
    """Nothing matches; the message says where sshrec looked."""


def locate_cast(target: str, home: str) -> str:
    if os.path.exists(target):
        if os.path.isdir(target):
            raise NotFound(f"{target} is a directory, not a recording")
        if target.endswith(".json"):
            cast = target[: -len(".json")] + ".cast"
            if os.path.exists(cast):
                return cast
        return target
    if is_session_id(target):
        path = spool.cast_path(home, target.upper())
        if os.path.exists(path):
            return path
        raise NotFound(f"session {target} is not in the spool {home} (looked for {path})")
    raise NotFound(f"{target}: no such file, and not a session id (26 characters, e.g. 01J...)")


def cast_of(record: dict[str, object], home: str) -> str:
    """The recording of an index row: its ``path`` when that file is there, else where the
    spool keeps that id (the index may have been built on another mount). NotFound if neither."""
    path = str(record.get("path") or "")
    if path and os.path.exists(path):
        return path
    path = spool.cast_path(home, str(record["id"]))
    if not os.path.exists(path):
        raise NotFound(f"session {record['id']} is in the index but its recording {path} is missing; "
                       "run: sshrec index --rebuild")
    return path
